//! Who issued a command, and from where.

use serde::{Deserialize, Serialize};

use crate::{KeyId, Prefix};

/// The admin credential behind an event.
///
/// The wire form is an object tagged by `type`: `{"type":"bootstrap"}` or
/// `{"type":"admin_key","key_id":"…","prefix":"…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Actor {
    /// The operator's bootstrap admin token (`KEYLEDGER_ADMIN_TOKEN`). It can
    /// only create admin keys.
    Bootstrap,
    /// A ledger key with the admin scope.
    AdminKey {
        /// The admin key's id.
        key_id: KeyId,
        /// Its public prefix.
        prefix: Prefix,
    },
}

impl Actor {
    /// A short label for logs and listings: `bootstrap` or `admin:<prefix>`.
    pub fn label(&self) -> String {
        match self {
            Self::Bootstrap => "bootstrap".to_owned(),
            Self::AdminKey { prefix, .. } => format!("admin:{}", prefix.as_str()),
        }
    }
}

/// Where a command came from. Every field is optional: events written before
/// origins were recorded (schema version 1) have none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// The client's IP address as the admin service saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The client's `User-Agent`, cut to [`Origin::MAX_USER_AGENT`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The W3C trace id of the request, when it carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl Origin {
    /// The longest user agent recorded, in characters.
    pub const MAX_USER_AGENT: usize = 200;

    /// A user agent as it would be recorded, before it is cut to length:
    /// its printable characters only. Scan this for secrets, not the raw
    /// header: dropping a control character can join a key split by one.
    pub fn printable_user_agent(raw: &str) -> String {
        raw.chars().filter(|c| !c.is_control()).collect()
    }

    /// Builds an origin, keeping only printable user-agent text (none at all
    /// when it holds an API key) and only a well-formed trace id.
    pub fn new(ip: Option<String>, user_agent: Option<&str>, trace_id: Option<&str>) -> Self {
        let user_agent = user_agent
            .map(Self::printable_user_agent)
            .filter(|ua| !ua.is_empty() && !crate::ApiKey::appears_in(ua))
            .map(|ua| ua.chars().take(Self::MAX_USER_AGENT).collect());
        let trace_id = trace_id
            .filter(|t| {
                t.len() == 32
                    && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                    && t.bytes().any(|b| b != b'0')
            })
            .map(str::to_owned);
        Self {
            ip,
            user_agent,
            trace_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_keep_printable_user_agents_and_valid_trace_ids_only() {
        let o = Origin::new(
            Some("10.0.0.1".into()),
            Some("curl/8\r\nX: y"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736"),
        );
        assert_eq!(o.user_agent.as_deref(), Some("curl/8X: y"));
        assert_eq!(
            o.trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let o = Origin::new(
            None,
            Some(&"a".repeat(500)),
            Some("00000000000000000000000000000000"),
        );
        assert_eq!(o.user_agent.map(|u| u.len()), Some(Origin::MAX_USER_AGENT));
        assert_eq!(o.trace_id, None);
    }

    #[test]
    fn a_key_split_by_a_control_character_is_not_recorded() {
        let key = crate::ApiKey::generate().unwrap();
        let (a, b) = key.expose_secret().split_at(20);
        let o = Origin::new(None, Some(&format!("tool {a}\t{b}")), None);
        assert_eq!(o.user_agent, None);
        let o = Origin::new(
            None,
            Some(&format!("{} {}", "x".repeat(190), key.expose_secret())),
            None,
        );
        assert_eq!(o.user_agent, None, "not even cut in half");
    }
}
