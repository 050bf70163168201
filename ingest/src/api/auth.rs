//! Bearer tokens with roles: the `[api]` configuration table and the
//! request extractor.
//!
//! ```toml
//! [[api.tokens]]
//! name = "desk-1"                    # shown as the actor in timelines
//! role = "supervisor"                # supervisor | dispatcher | department | worker | reporter | viewer
//! sha256 = "9f86d081884c7d65..."     # sha256 hex of the token; make one with `parkctl token new`
//!
//! [[api.tokens]]
//! name = "traffic-brigade"
//! role = "department"
//! department = "traffic"             # required for department tokens
//! sha256 = "..."
//!
//! [[api.tokens]]
//! name = "W002"
//! role = "worker"
//! worker = "W002"                    # required for worker tokens
//! sha256 = "..."
//! ```
//!
//! Only the SHA-256 of each token is configured and kept in memory; a
//! request's `Authorization: Bearer <token>` is hashed and looked up. A
//! missing, malformed or unknown token is 401; a known token whose role
//! does not allow the request is 403. Tokens are random (32 bytes, 256
//! bits of entropy, from `parkctl token new`), so an unsalted fast hash
//! is enough: there is nothing to brute-force from it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use serde::Deserialize;

use super::error::ApiError;
use parkwatch_incidents::hash::is_sha256;
use parkwatch_incidents::model::{Principal, Role};
pub use parkwatch_incidents::token::{hash_token, new_token};

/// `[api]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// The tokens that may use `/api/v1` (`[[api.tokens]]`). Default: none,
    /// which leaves only `/api/v1/openapi.json` usable.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// One `[[api.tokens]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Required. Unique name, recorded as the actor of its steps.
    pub name: String,
    /// Required. `supervisor`, `dispatcher`, `department`, `worker`,
    /// `reporter` or `viewer`.
    pub role: Role,
    /// Required. SHA-256 of the token, 64 lowercase hex digits.
    pub sha256: String,
    /// Department tokens: the department id (`site.toml`) they act for.
    #[serde(default)]
    pub department: Option<String>,
    /// Worker tokens: the worker id (`workers.toml`) they act as.
    #[serde(default)]
    pub worker: Option<String>,
}

impl ApiConfig {
    /// Every problem, as `(key, message)` relative to `[api]`. With `site`,
    /// departments and workers are checked to exist.
    pub fn problems(&self, site: Option<&parkwatch_config::Site>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let key = |k: &str| format!("tokens[{i}].{k}");
            if t.name.trim().is_empty() || t.name.len() > 64 || t.name.chars().any(char::is_control)
            {
                out.push((key("name"), "must be 1..=64 printable characters".into()));
            }
            if self.tokens[..i].iter().any(|o| o.name == t.name) {
                out.push((key("name"), format!("{:?} is used twice", t.name)));
            }
            if !is_sha256(&t.sha256) {
                out.push((
                    key("sha256"),
                    "must be 64 lowercase hex digits (parkctl token hash)".into(),
                ));
            } else if self.tokens[..i].iter().any(|o| o.sha256 == t.sha256) {
                out.push((key("sha256"), "the same token is configured twice".into()));
            }
            if t.role == Role::System {
                out.push((key("role"), "\"system\" is ingest's own role".into()));
            }
            match (t.role, &t.department) {
                (Role::Department, None) => out.push((
                    key("department"),
                    "department tokens need the department id they act for".into(),
                )),
                (Role::Department, Some(d)) => {
                    if let Some(s) = site
                        && s.department(d).is_none()
                    {
                        out.push((
                            key("department"),
                            format!("no department {d:?} in the site"),
                        ));
                    }
                }
                (_, Some(_)) => {
                    out.push((key("department"), "only for role = \"department\"".into()))
                }
                (_, None) => {}
            }
            match (t.role, &t.worker) {
                (Role::Worker, None) => out.push((
                    key("worker"),
                    "worker tokens need the worker id they act as".into(),
                )),
                (Role::Worker, Some(w)) => {
                    if let Some(s) = site
                        && !s.workers.iter().any(|x| &x.id == w)
                    {
                        out.push((key("worker"), format!("no worker {w:?} in the site")));
                    }
                }
                (_, Some(_)) => out.push((key("worker"), "only for role = \"worker\"".into())),
                (_, None) => {}
            }
        }
        out
    }
}

/// The configured tokens, by hash.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_hash: Arc<HashMap<String, Principal>>,
}

impl Tokens {
    /// From validated configuration.
    pub fn new(cfg: &ApiConfig) -> Self {
        let by_hash = cfg
            .tokens
            .iter()
            .map(|t| {
                (
                    t.sha256.clone(),
                    Principal {
                        name: t.name.clone(),
                        role: t.role,
                        department: t.department.clone(),
                        worker: t.worker.clone(),
                    },
                )
            })
            .collect();
        Tokens {
            by_hash: Arc::new(by_hash),
        }
    }

    /// The principal of a raw token.
    pub fn lookup(&self, token: &str) -> Option<&Principal> {
        self.by_hash.get(&hash_token(token))
    }

    /// Resolves an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, ApiError> {
        let Some(h) = header else {
            return Err(ApiError::unauthorized(
                "missing token: send Authorization: Bearer <token>",
            ));
        };
        let Some(token) = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
        else {
            return Err(ApiError::unauthorized(
                "malformed Authorization header: expected Bearer <token>",
            ));
        };
        self.lookup(token.trim())
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("unknown token"))
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl Auth {
    /// 403 unless the caller's role is one of `roles`.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<(), ApiError> {
        if roles.contains(&self.0.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "role {} may not {what} (allowed: {})",
                self.0.role,
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }
}

impl FromRequestParts<super::ApiState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &super::ApiState,
    ) -> Result<Self, Self::Rejection> {
        let h = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        state.tokens.authenticate(h).map(Auth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(toml_text: &str) -> ApiConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn tokens_authenticate_by_hash() {
        let token = new_token();
        assert!(token.starts_with("pw_") && token.len() == 67, "{token}");
        let c = cfg(&format!(
            "[[tokens]]\nname = \"desk\"\nrole = \"supervisor\"\nsha256 = \"{}\"\n",
            hash_token(&token)
        ));
        assert!(c.problems(None).is_empty(), "{:?}", c.problems(None));
        let t = Tokens::new(&c);
        let p = t.authenticate(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!((p.name.as_str(), p.role), ("desk", Role::Supervisor));
        for bad in [
            None,
            Some("Bearer nope"),
            Some(token.as_str()),
            Some("Basic abc"),
        ] {
            let e = t.authenticate(bad).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::UNAUTHORIZED, "{bad:?}");
        }
    }

    #[test]
    fn token_config_problems_name_each_key() {
        let h = hash_token("x");
        let c = cfg(&format!(
            "[[tokens]]\nname = \"a\"\nrole = \"department\"\nsha256 = \"{h}\"\n\
             [[tokens]]\nname = \"a\"\nrole = \"viewer\"\nsha256 = \"ABC\"\nworker = \"W1\"\n\
             [[tokens]]\nname = \"s\"\nrole = \"system\"\nsha256 = \"{h}\"\n"
        ));
        let keys: Vec<String> = c.problems(None).into_iter().map(|p| p.0).collect();
        assert_eq!(
            keys,
            [
                "tokens[0].department",
                "tokens[1].name",
                "tokens[1].sha256",
                "tokens[1].worker",
                "tokens[2].sha256",
                "tokens[2].role"
            ]
        );
    }
}
