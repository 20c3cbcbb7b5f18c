//! Test helpers: certificates made by the test (a CA and the certificates it
//! signs, never committed keys), configurations from them, and a bound on
//! each test's time.

#![allow(dead_code)]

use std::sync::Arc;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair,
    KeyUsagePurpose,
};
use sock_tls::{ClientConfig, ServerConfig, TlsOptions};

/// A test CA.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate chain and key, PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_owned());
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |_| {})
    }

    /// A certificate that expired in 2021.
    pub fn expired(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |p| {
            p.not_before = date_time_ymd(2020, 1, 1);
            p.not_after = date_time_ymd(2021, 1, 1);
        })
    }

    fn leaf_with(&self, names: &[&str], f: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut p = CertificateParams::new(names).unwrap();
        f(&mut p);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

impl Leaf {
    pub fn keypair(&self) -> sock_tls::KeyPair {
        sock_tls::KeyPair {
            cert: self.cert.clone().into_bytes(),
            key: self.key.clone().into_bytes(),
            ocsp_staple: None,
        }
    }

    /// Server options with this certificate.
    pub fn server_options(&self) -> TlsOptions {
        let mut o = TlsOptions::default();
        o.keypairs.push(self.keypair());
        o
    }

    pub fn server(&self) -> Arc<ServerConfig> {
        sock_tls::server_config(&self.server_options()).unwrap()
    }
}

/// Client options trusting `ca`.
pub fn client_options(ca: &Ca) -> TlsOptions {
    TlsOptions {
        ca: Some(ca.pem().into_bytes()),
        ..TlsOptions::default()
    }
}

pub fn client(ca: &Ca) -> Arc<ClientConfig> {
    sock_tls::client_config(&client_options(ca)).unwrap()
}

/// Runs `f` on a thread of its own and fails if it takes longer than
/// `secs`: a test that would hang fails instead.
pub fn bounded<T: Send + 'static>(secs: f64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(std::time::Duration::from_secs_f64(secs)) {
        Ok(v) => {
            h.join().unwrap();
            v
        }
        // The thread ended without a value: it panicked.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!(),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("the test took more than {secs} s")
        }
    }
}

/// A file in a fresh temporary directory of this process.
pub fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sock-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p
}
