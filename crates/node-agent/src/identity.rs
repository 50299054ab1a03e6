//! Who the agent is to the API server. Only oxivirt's own components (user
//! `system:oxivirt:…`) may write a VMI's status: for anyone else the VMI mutator puts the
//! stored status back, as upstream's does for non-KubeVirt users. An agent joined with a
//! user's credentials (say `admin.kubeconfig`) would therefore start launchers whose VMIs
//! stay `Scheduled` for ever without a single error, so it refuses to start instead.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::PostParams;
use kube::Api;

/// The user name prefix of oxivirt's components (webhooks' `SYSTEM_USER_PREFIX`).
const COMPONENT_USER_PREFIX: &str = "system:oxivirt:";

/// Fails when the client's identity cannot write VMI status.
///
/// # Errors
/// When the identity cannot be read, or is not one of oxivirt's components; the message
/// says which credentials to use.
pub(crate) async fn require_component(client: &kube::Client) -> anyhow::Result<()> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot ask the API server who this agent is (SelfSubjectReview): {e}")
        })?;
    let user = review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .unwrap_or_default();
    check(&user)
}

fn check(user: &str) -> anyhow::Result<()> {
    if user.starts_with(COMPONENT_USER_PREFIX) {
        return Ok(());
    }
    anyhow::bail!(
        "this agent authenticates as {user:?}, not as oxivirt's components, and the API server \
         ignores VMI status from users (its VMIs would stay Scheduled): join with \
         --kubeconfig <server data-dir>/components.kubeconfig, or --token with the token in that file"
    )
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn components_pass_and_users_are_told_which_credentials_to_use() {
        assert!(check("system:oxivirt:components").is_ok());
        let message = check("admin").unwrap_err().to_string();
        assert!(message.contains("\"admin\""), "{message}");
        assert!(message.contains("components.kubeconfig"), "{message}");
    }
}
