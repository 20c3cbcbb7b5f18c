//! Handles: checked names for values that Lua code refers to by number.
//!
//! A socket's Lua object keeps, beside its userdata, a handle: a number that
//! names the socket in its Lua state's handle table (an index and a
//! generation, below 2^53 so that a Lua number holds it exactly). The FFI
//! fast path (`socket/fast.rs`) and the scheduler's requests name sockets by
//! it, which is cheaper than a userdata (no mlua borrow, no type check).
//!
//! Every lookup validates the handle (an index and a compare, about 1 ns): a
//! handle that Lua code forged, kept after a collection, or took from
//! another socket finds no entry, or finds another *live* value, and never a
//! freed one. The generation of a slot changes on every removal.
//!
//! The table is a plain value, kept per Lua state by its owner (no
//! thread-local): two states on one OS thread have two tables, and a handle
//! of one is unknown to the other.

/// Generations stay below 2^21 so that a handle (generation << 32 | index)
/// stays below 2^53, exact in a Lua number.
const GEN_MASK: u32 = (1 << 21) - 1;

/// One entry: its generation, and the value while the handle is live.
struct Entry<T> {
    gen: u32,
    value: Option<T>,
}

/// A table of values named by checked handles.
pub(crate) struct Handles<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
}

impl<T: Copy> Handles<T> {
    /// An empty table.
    pub(crate) const fn new() -> Handles<T> {
        Handles {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Adds `value` and returns its handle (never 0).
    pub(crate) fn insert(&mut self, value: T) -> u64 {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.entries.push(Entry {
                    gen: 0,
                    value: None,
                });
                (self.entries.len() - 1) as u32
            }
        };
        let e = &mut self.entries[index as usize];
        e.gen = (e.gen & GEN_MASK) % GEN_MASK + 1; // 1..=GEN_MASK, never 0
        e.value = Some(value);
        (u64::from(e.gen) << 32) | u64::from(index)
    }

    /// Removes the handle `h`: unknown from now on. A stale or forged handle
    /// removes nothing.
    pub(crate) fn remove(&mut self, h: u64) {
        let (index, gen) = ((h & 0xffff_ffff) as u32, (h >> 32) as u32);
        if let Some(e) = self.entries.get_mut(index as usize) {
            if e.gen == gen && e.value.is_some() {
                e.value = None;
                self.free.push(index);
            }
        }
    }

    /// The value of the handle `h`, if the handle is live.
    #[inline]
    pub(crate) fn get(&self, h: u64) -> Option<T> {
        let (index, gen) = ((h & 0xffff_ffff) as usize, (h >> 32) as u32);
        match self.entries.get(index) {
            Some(e) if e.gen == gen => e.value,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_checked_and_never_reused_as_is() {
        let mut t = Handles::new();
        let ha = t.insert('a');
        assert!(ha < 1 << 53);
        assert_eq!(t.get(ha), Some('a'));
        t.remove(ha);
        assert_eq!(t.get(ha), None, "a removed handle is unknown");
        let hb = t.insert('b');
        assert_eq!(hb & 0xffff_ffff, ha & 0xffff_ffff, "the slot is reused");
        assert_ne!(hb, ha, "with a new generation");
        assert_eq!(t.get(ha), None);
        assert_eq!(t.get(hb), Some('b'));
        t.remove(ha); // a stale handle removes nothing
        assert_eq!(t.get(hb), Some('b'));
        for forged in [0, u64::MAX, hb + 1, hb ^ (1 << 40)] {
            assert_eq!(t.get(forged), None, "forged handle {forged:#x}");
        }
    }

    #[test]
    fn generations_wrap_below_2_pow_21_and_skip_zero() {
        let mut t = Handles::new();
        let mut seen_low = false;
        for _ in 0..(GEN_MASK as usize + 5) {
            let h = t.insert(());
            let g = (h >> 32) as u32;
            assert!((1..=GEN_MASK).contains(&g));
            seen_low |= g == 1;
            t.remove(h);
        }
        assert!(seen_low, "the generation wrapped");
    }
}
