//! Registry authentication as GitHub Packages does it: anonymous pulls send
//! `Authorization: Bearer QQ==`; otherwise a 401 carries a `WWW-Authenticate`
//! challenge naming a token endpoint, whose tokens are scoped to the
//! repositories they were asked for.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// The token anonymous clients send (`base64("A")`).
pub const ANONYMOUS_TOKEN: &str = "QQ==";

/// The service name in challenges and token requests.
pub const SERVICE: &str = "ghcr.io";

/// The repository of an image: `homebrew/core/<image>`.
pub(crate) fn repository(image: &str) -> String {
    format!("homebrew/core/{image}")
}

/// The `WWW-Authenticate` value of a 401 for `image`.
pub(crate) fn challenge(api_origin: &str, image: &str) -> String {
    format!(
        "Bearer realm=\"{api_origin}/token\",service=\"{SERVICE}\",scope=\"repository:{}:pull\"",
        repository(image)
    )
}

/// The repositories a `/token` query asks pull access for: every
/// `scope=repository:<name>:<actions>` whose actions include `pull` (scopes
/// may repeat or be space-separated).
pub(crate) fn requested_repositories(query: &str) -> HashSet<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "scope")
        .flat_map(|(_, value)| {
            value
                .split(' ')
                .filter_map(|scope| {
                    let rest = scope.strip_prefix("repository:")?;
                    let (name, actions) = rest.rsplit_once(':')?;
                    actions
                        .split(',')
                        .any(|a| a == "pull")
                        .then(|| name.to_string())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Tokens handed out by `/token` and what each may pull.
#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    tokens: Mutex<HashMap<String, HashSet<String>>>,
}

impl TokenStore {
    /// A new token granting pull on `repositories`.
    pub fn issue(&self, repositories: HashSet<String>) -> String {
        let token = format!("standin_{}", hex::encode(rand::random::<[u8; 16]>()));
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.clone(), repositories);
        token
    }

    fn grants(&self, token: &str, repository: &str) -> bool {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .is_some_and(|repos| repos.contains(repository))
    }

    /// Whether the request's credentials allow pulling `image`.
    pub fn authorizes(&self, headers: &HeaderMap, image: &str, require_token: bool) -> bool {
        let Some(token) = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
        else {
            return false;
        };
        if token == ANONYMOUS_TOKEN {
            return !require_token;
        }
        self.grants(token, &repository(image))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_parsed() {
        let repos = requested_repositories(
            "service=ghcr.io&scope=repository%3Ahomebrew%2Fcore%2Fopenssl%2F3%3Apull&scope=repository:homebrew/core/wget:push,pull+repository:homebrew/core/curl:push",
        );
        let expected: HashSet<String> = ["homebrew/core/openssl/3", "homebrew/core/wget"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(repos, expected);
    }
}
