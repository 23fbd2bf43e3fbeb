use clap::Args;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};

use super::{Global, Output, print_json};
use berth_cluster as cluster;
use berth_cluster::forward;
use berth_core::error::{Error, Result};
use berth_core::ui::Ui;
use berth_node::addons::{self, Addon};

#[derive(Args)]
pub struct DashboardCmd {
    /// Print only the URL and the login token, and serve.
    #[arg(long)]
    url: bool,
    /// Log in as an administrator (cluster-admin) instead of read-only.
    #[arg(long)]
    admin: bool,
}

/// How long a printed login token is good for.
const TOKEN_SECONDS: i64 = 8 * 3600;

/// Serves the dashboard on 127.0.0.1 through the API server until Ctrl-C,
/// with a token to log in as a read-only (or admin) service account.
pub async fn run(cmd: DashboardCmd, global: &Global, ui: Ui) -> Result<()> {
    let profile = super::addons::profile_with(global, Addon::Dashboard)?;
    let ctx = global.ctx_for(ui, Some(&profile)).await?;
    let client = cluster::client(&ctx.store, &profile).await?;
    let account = if cmd.admin {
        addons::DASHBOARD_ADMIN
    } else {
        addons::DASHBOARD_VIEWER
    };
    let token = token(&client, account).await?;
    let (namespace, service) = (addons::DASHBOARD_NAMESPACE, addons::DASHBOARD_SERVICE);
    let forwards = forward::listen(&client, namespace, service, forward::HostPorts::Free).await?;
    let url = forwards[0].url();
    match (global.output, cmd.url) {
        (Output::Json, _) => print_json(&serde_json::json!({
            "url": url, "account": account, "token": token,
        })),
        (Output::Text, true) => println!("{url}\n{token}"),
        (Output::Text, false) => {
            println!("Headlamp: {url}");
            println!("Log in with this token ({account}, good for 8 hours):\n{token}");
        }
    }
    super::service::serve(client, namespace, service, forwards, ui).await;
    Ok(())
}

/// A token of the dashboard's service account `account`, asked of the
/// API server (no Secret holds it).
async fn token(client: &kube::Client, account: &str) -> Result<String> {
    let accounts: Api<ServiceAccount> =
        Api::namespaced(client.clone(), addons::DASHBOARD_NAMESPACE);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(TOKEN_SECONDS),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let answer = accounts
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .map_err(|e| {
            Error::failure(format!("cannot get a token of the service account {account}: {e}"))
                .with_hint("the control plane applies the dashboard once its API server answers: wait a moment, `berth addons list` shows its state")
        })?;
    answer
        .status
        .map(|s| s.token)
        .ok_or_else(|| Error::failure("the API server answered the token request without a token"))
}
