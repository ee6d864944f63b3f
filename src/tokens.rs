//! `mcpd token create|ls|revoke`: API tokens with roles, replicated by Raft.
//!
//! The token of `create` is printed once; the cluster keeps only its hash, so it cannot
//! be shown again (revoke it and create another).

use std::time::Duration;

use mcp_proto::cluster::{CreateTokenRequest, ListTokensRequest, RevokeTokenRequest};
use serde_json::{json, Value};

use crate::cli::{OutputFormat, TokenAction};
use crate::client::{Cluster, Op};
use crate::output;

type CmdResult = Result<(), Box<dyn std::error::Error>>;

/// Parses a lifetime: a number with a unit `s`, `m`, `h`, `d` or `w` (`30d`, `12h`).
pub fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("lifetime {text:?} needs a unit: s, m, h, d or w (30d)"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("lifetime {text:?} must start with a number (30d)"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("lifetime {text:?}: unit must be s, m, h, d or w")),
    };
    if number == 0 {
        return Err("lifetime must be more than zero".to_owned());
    }
    number
        .checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("lifetime {text:?} is too long"))
}

/// `ms` since the Unix epoch as an RFC 3339 date (`-` for 0).
fn date(ms: u64) -> String {
    if ms == 0 {
        return "-".to_owned();
    }
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Runs one `mcpd token` action.
pub async fn run(cluster: &Cluster, out: OutputFormat, action: TokenAction) -> CmdResult {
    match action {
        TokenAction::Create {
            name,
            role,
            allow,
            expires,
        } => {
            let expires_in_secs = match expires {
                Some(text) => parse_lifetime(&text)?.as_secs(),
                None => 0,
            };
            let request = CreateTokenRequest {
                name: name.clone(),
                role,
                allow,
                expires_in_secs,
            };
            // Never repeated: a second create would fail on the name and hide the token.
            let reply = cluster
                .cluster("create token", Op::Write, |mut c| {
                    let r = request.clone();
                    async move { c.create_token(r).await }
                })
                .await?;
            match out {
                OutputFormat::Json | OutputFormat::Yaml => println!(
                    "{}",
                    output::json(&json!({
                        "name": name,
                        "token": reply.token,
                        "expires_at": (reply.expires_at_ms > 0).then(|| date(reply.expires_at_ms)),
                        "revision": reply.revision,
                    }))
                ),
                OutputFormat::Table => {
                    println!("{}", reply.token);
                    eprintln!(
                        "token {name:?} created (expires: {}); it is shown only this once",
                        date(reply.expires_at_ms)
                    );
                }
            }
        }
        TokenAction::Ls => {
            let reply = cluster
                .cluster("list tokens", Op::Read, |mut c| async move {
                    c.list_tokens(ListTokensRequest {}).await
                })
                .await?;
            match out {
                OutputFormat::Json | OutputFormat::Yaml => {
                    let tokens: Vec<Value> = reply
                        .tokens
                        .iter()
                        .map(|t| {
                            json!({
                                "name": t.name,
                                "role": t.role,
                                "allow": t.allow,
                                "created_at": date(t.created_at_ms),
                                "expires_at": (t.expires_at_ms > 0).then(|| date(t.expires_at_ms)),
                                "expired": t.expired,
                            })
                        })
                        .collect();
                    println!("{}", output::json(&Value::Array(tokens)));
                }
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = reply
                        .tokens
                        .iter()
                        .map(|t| {
                            vec![
                                t.name.clone(),
                                t.role.clone(),
                                if t.allow.is_empty() {
                                    "-".to_owned()
                                } else {
                                    t.allow.join(",")
                                },
                                date(t.created_at_ms),
                                if t.expired {
                                    format!("{} (expired)", date(t.expires_at_ms))
                                } else {
                                    date(t.expires_at_ms)
                                },
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        output::table(&["NAME", "ROLE", "ALLOW", "CREATED", "EXPIRES"], &rows)
                    );
                }
            }
        }
        TokenAction::Revoke { name } => {
            let request = RevokeTokenRequest { name: name.clone() };
            let reply = cluster
                .cluster("revoke token", Op::Write, |mut c| {
                    let r = request.clone();
                    async move { c.revoke_token(r).await }
                })
                .await?;
            match out {
                OutputFormat::Json | OutputFormat::Yaml => println!(
                    "{}",
                    output::json(
                        &json!({"name": name, "revoked": true, "revision": reply.revision})
                    )
                ),
                OutputFormat::Table => {
                    println!("token {name:?} revoked (revision {})", reply.revision)
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_lifetime("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_lifetime("2w"), Ok(Duration::from_secs(14 * 86_400)));
        for bad in ["30", "d", "0h", "5y", "-1d", "99999999999999999999d"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
        assert_eq!(date(0), "-");
        assert_eq!(date(86_400_000), "1970-01-02T00:00:00Z");
    }
}
