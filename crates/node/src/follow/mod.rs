//! The shell library berth's scripts in a cluster follow the API server
//! with (the storage provisioner, the LoadBalancer controller): watches
//! through openssl, and a reconcile at each change, so that they cost
//! nothing while nothing changes and need no image.

/// The library, for a script that reaches the API server at `server`
/// (host:port) with the CA, certificate and key at these paths. It goes
/// where the script says `@FOLLOW@`.
pub fn library(server: &str, ca: &str, cert: &str, key: &str) -> String {
    format!(
        "api_server={server}\napi_ca={ca}\napi_cert={cert}\napi_key={key}\n{}",
        include_str!("follow.sh")
    )
}

/// `script` with the library in place of its `@FOLLOW@` line.
pub fn with_library(script: &str, server: &str, ca: &str, cert: &str, key: &str) -> String {
    script.replace("@FOLLOW@\n", &library(server, ca, cert, key))
}
