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

/// Tokens handed out by `/token` and what each may pull. Tokens expire
/// the way registry tokens do, mid-run: after `max_uses` authorised requests
/// each (a stand-in for their lifetime that needs no clock), or all at once
/// on [`TokenStore::expire_all`]. An expired token gets a 401 with a fresh
/// challenge.
#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    tokens: Mutex<HashMap<String, Grant>>,
    /// Authorised requests a token serves before it expires (`None`: no limit).
    max_uses: Mutex<Option<u32>>,
}

#[derive(Debug)]
struct Grant {
    repositories: HashSet<String>,
    uses: u32,
}

impl TokenStore {
    /// A new token granting pull on `repositories`.
    pub fn issue(&self, repositories: HashSet<String>) -> String {
        let token = format!("standin_{}", hex::encode(rand::random::<[u8; 16]>()));
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                token.clone(),
                Grant {
                    repositories,
                    uses: 0,
                },
            );
        token
    }

    /// Makes every token expire after `uses` authorised requests (`None`:
    /// never). Applies to tokens already issued too.
    pub fn set_max_uses(&self, uses: Option<u32>) {
        *self.max_uses.lock().unwrap_or_else(|e| e.into_inner()) = uses;
    }

    /// Expires every token issued so far.
    pub fn expire_all(&self) {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn grants(&self, token: &str, repository: &str) -> bool {
        let max_uses = *self.max_uses.lock().unwrap_or_else(|e| e.into_inner());
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let Some(grant) = tokens.get_mut(token) else {
            return false;
        };
        if max_uses.is_some_and(|max| grant.uses >= max) {
            tokens.remove(token);
            return false;
        }
        if !grant.repositories.contains(repository) {
            return false;
        }
        grant.uses += 1;
        true
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
