//! ServiceAccount tokens: signed, expiring JWTs issued through the `token` subresource
//! (`kubectl create token`) and accepted as bearer tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use serde_json::{json, Value};

use crate::context::UserInfo;

pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Default and bounds of `spec.expirationSeconds`, as Kubernetes.
pub const DEFAULT_TTL_SECS: i64 = 3600;
pub const MIN_TTL_SECS: i64 = 600;
pub const MAX_TTL_SECS: i64 = 48 * 3600;

/// Signs and verifies tokens with the cluster's ServiceAccount key.
pub struct TokenSigner {
    key: hmac::Key,
}

/// The identity a verified token carries.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenClaims {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub expires: i64,
}

impl TokenClaims {
    pub fn user(&self) -> UserInfo {
        UserInfo {
            name: format!("system:serviceaccount:{}:{}", self.namespace, self.name),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{}", self.namespace),
                "system:authenticated".into(),
            ],
        }
    }
}

impl TokenSigner {
    pub fn new(secret: &[u8]) -> Self {
        TokenSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A signer whose key is derived from this one for `purpose`: tokens of one purpose
    /// (CDI upload tokens, say) never verify as another's.
    pub fn derive(&self, purpose: &str) -> TokenSigner {
        let tag = hmac::sign(&self.key, purpose.as_bytes());
        TokenSigner::new(tag.as_ref())
    }

    /// The HS256 signature of `input` (for JWTs of other shapes than ServiceAccount tokens).
    pub fn sign(&self, input: &[u8]) -> Vec<u8> {
        hmac::sign(&self.key, input).as_ref().to_vec()
    }

    /// Whether `signature` is this key's signature of `input`.
    pub fn verify_signature(&self, input: &[u8], signature: &[u8]) -> bool {
        hmac::verify(&self.key, input, signature).is_ok()
    }

    /// Issues a token for a ServiceAccount valid for `ttl_secs` from `now`.
    pub fn issue(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: &[String],
        now: i64,
        ttl_secs: i64,
    ) -> (String, i64) {
        let expires = now + ttl_secs;
        let audiences: Vec<String> = if audiences.is_empty() {
            vec![ISSUER.to_string()]
        } else {
            audiences.to_vec()
        };
        let header = json!({"alg": "HS256", "typ": "JWT"});
        let claims = json!({
            "aud": audiences, "exp": expires, "iat": now, "nbf": now, "iss": ISSUER,
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = hmac::sign(&self.key, signing_input.as_bytes());
        (
            format!(
                "{signing_input}.{}",
                URL_SAFE_NO_PAD.encode(signature.as_ref())
            ),
            expires,
        )
    }

    /// Checks signature, issuer and expiry; None for anything else than a valid token.
    pub fn verify(&self, token: &str, now: i64) -> Option<TokenClaims> {
        let (signing_input, signature) = token.rsplit_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        hmac::verify(&self.key, signing_input.as_bytes(), &signature).ok()?;
        let (_, claims) = signing_input.split_once('.')?;
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()?;
        let expires = claims["exp"].as_i64()?;
        if claims["iss"] != ISSUER
            || expires <= now
            || claims["nbf"].as_i64().is_some_and(|nbf| nbf > now + 60)
        {
            return None;
        }
        let sa = &claims["kubernetes.io"];
        Some(TokenClaims {
            namespace: sa["namespace"].as_str()?.to_string(),
            name: sa["serviceaccount"]["name"].as_str()?.to_string(),
            uid: sa["serviceaccount"]["uid"].as_str()?.to_string(),
            expires,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let signer = TokenSigner::new(b"0123456789abcdef0123456789abcdef");
        let (token, exp) = signer.issue("ns", "sa", "uid-1", &[], 1000, 600);
        assert_eq!(exp, 1600);
        let claims = signer.verify(&token, 1200).unwrap();
        assert_eq!(claims.user().name, "system:serviceaccount:ns:sa");
        assert!(
            signer.verify(&token, 1600).is_none(),
            "expired tokens are refused"
        );
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let signer = TokenSigner::new(b"key-one-key-one-key-one-key-one!");
        let other = TokenSigner::new(b"key-two-key-two-key-two-key-two!");
        let (token, _) = other.issue("ns", "sa", "u", &[], 1000, 600);
        assert!(signer.verify(&token, 1100).is_none());
        let (mine, _) = signer.issue("ns", "sa", "u", &[], 1000, 600);
        let tampered = mine.replacen('.', "x.", 1);
        assert!(signer.verify(&tampered, 1100).is_none());
    }
}
