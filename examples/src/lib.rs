//! Examples of sock (see the `examples/` folder).
