//! A cluster whose certificates expired while it was stopped (a laptop's
//! cluster left for a year; minikube tests it as TestCertExpiration): the
//! next `start` issues new ones, puts them in the node and the kubeconfig,
//! and the cluster works again.

mod common;

use common::{Env, json};
use rcgen::{CertificateParams, Issuer, KeyPair};

/// The names, organisations, addresses and uses of the certificate `pem`,
/// as rcgen parameters.
fn params_of(pem: &str) -> CertificateParams {
    use x509_parser::extensions::GeneralName;
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for cn in cert.subject().iter_common_name() {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn.as_str().unwrap());
    }
    for org in cert.subject().iter_organization() {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, org.as_str().unwrap());
    }
    if let Ok(Some(names)) = cert.subject_alternative_name() {
        for name in &names.value.general_names {
            params.subject_alt_names.push(match name {
                GeneralName::DNSName(dns) => rcgen::SanType::DnsName((*dns).try_into().unwrap()),
                GeneralName::IPAddress(ip) => rcgen::SanType::IpAddress(match ip.len() {
                    4 => std::net::IpAddr::from(<[u8; 4]>::try_from(*ip).unwrap()),
                    _ => std::net::IpAddr::from(<[u8; 16]>::try_from(*ip).unwrap()),
                }),
                other => panic!("a name berth does not issue: {other:?}"),
            });
        }
    }
    if let Ok(Some(uses)) = cert.extended_key_usage() {
        if uses.value.server_auth {
            params
                .extended_key_usages
                .push(rcgen::ExtendedKeyUsagePurpose::ServerAuth);
        }
        if uses.value.client_auth {
            params
                .extended_key_usages
                .push(rcgen::ExtendedKeyUsagePurpose::ClientAuth);
        }
    }
    params
}

/// Every leaf certificate in `pki`, signed again by its CA with the same
/// key, names and uses, but expired yesterday; the leaves' names.
fn expire_leaves(pki: &std::path::Path) -> Vec<String> {
    let read = |file: &str| std::fs::read_to_string(pki.join(file)).unwrap();
    let issuer = |ca: &str| {
        let key = KeyPair::from_pem(&read(&format!("{ca}.key"))).unwrap();
        let mut params = params_of(&read(&format!("{ca}.crt")));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        Issuer::new(params, key)
    };
    let (cluster_ca, front_proxy_ca) = (issuer("ca"), issuer("front-proxy-ca"));
    let now = time::OffsetDateTime::now_utc();
    let mut expired = Vec::new();
    for entry in std::fs::read_dir(pki).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".crt") else {
            continue;
        };
        if stem == "ca" || stem == "front-proxy-ca" {
            continue;
        }
        let mut params = params_of(&read(&name));
        params.not_before = now - time::Duration::days(400);
        params.not_after = now - time::Duration::days(1);
        let key = KeyPair::from_pem(&read(&format!("{stem}.key"))).unwrap();
        let signer = if stem == "front-proxy-client" {
            &front_proxy_ca
        } else {
            &cluster_ca
        };
        let cert = params.signed_by(&key, signer).unwrap();
        std::fs::write(pki.join(&name), cert.pem()).unwrap();
        expired.push(stem.to_string());
    }
    expired
}

#[test]
fn a_cluster_whose_certificates_expired_starts_again_with_new_ones() {
    let env = Env::new();
    let profile = "e2e-expired";
    env.ok(&["start", "-p", profile]);
    env.ok(&["stop", "-p", profile]);
    let pki = env.berth_home().join("profiles").join(profile).join("pki");
    let expired = expire_leaves(&pki);
    assert!(
        expired.contains(&"apiserver".to_string()) && expired.contains(&"admin".to_string()),
        "{expired:?}"
    );
    let status = json(&env.run(&["status", "-p", profile, "-o", "json"]).1);
    assert!(
        status["certificate_days_left"].as_i64().unwrap() < 0,
        "{status}"
    );

    env.ok(&["start", "-p", profile]);
    let status = json(&env.ok(&["status", "-p", profile, "-o", "json"]));
    assert!(
        status["certificate_days_left"].as_i64().unwrap() > 300,
        "{status}"
    );
    // The node serves the new certificate, and the kubeconfig's admin
    // certificate is the new one too: kubectl works.
    let served = env.ok(&[
        "ssh",
        "-p",
        profile,
        "--",
        "cat",
        "/etc/kubernetes/pki/apiserver.crt",
    ]);
    assert_eq!(
        served.trim(),
        std::fs::read_to_string(pki.join("apiserver.crt"))
            .unwrap()
            .trim()
    );
    let nodes = env.kubectl(profile, &["get", "nodes", "--no-headers"]);
    assert!(nodes.contains(" Ready "), "{nodes}");
}
