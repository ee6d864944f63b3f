//! A [`ServerSpec`] back in the flat user form: whole (what `from_value` reads back) or with
//! the table's secret fields redacted, for listings.

use serde_json::{json, Map, Value};

use super::fields;
use super::model::{Auth, ServerSpec, Transport, REDACTED};

impl ServerSpec {
    /// The flat user form, secrets included; `from_value` of it gives back this spec.
    pub fn to_flat_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("name".into(), self.name.clone().into());
        out.insert("transport".into(), self.transport_kind().into());
        match &self.transport {
            Transport::Stdio {
                command,
                args,
                env,
                inherit_env,
                cwd,
                sandbox,
            } => {
                out.insert("command".into(), command.clone().into());
                out.insert("args".into(), args.clone().into());
                out.insert("env".into(), json!(env));
                out.insert("inherit_env".into(), inherit_env.clone().into());
                if let Some(cwd) = cwd {
                    out.insert("cwd".into(), cwd.clone().into());
                }
                super::sandbox::render(sandbox, &mut out);
            }
            Transport::Http { url, headers, auth } => {
                out.insert("url".into(), url.clone().into());
                out.insert("headers".into(), json!(headers));
                if let Some(auth) = auth {
                    out.insert("auth".into(), auth_json(auth));
                }
            }
            Transport::Docker(docker) => super::docker::render(docker, &mut out),
        }
        out.insert("replicas".into(), self.replicas.into());
        out.insert("priority".into(), self.priority.into());
        out.insert("tags".into(), self.tags.clone().into());
        out.insert(
            "placement".into(),
            json!({
                "allowed_nodes": self.placement.allowed_nodes,
                "node_tags": self.placement.node_tags,
            }),
        );
        if let Some(t) = self.request_timeout_ms {
            out.insert("request_timeout_ms".into(), t.into());
        }
        if let Some(d) = &self.description {
            out.insert("description".into(), d.clone().into());
        }
        super::guards::render(&self.guards, &mut out);
        if self.on_demand {
            out.insert("on_demand".into(), true.into());
        }
        if self.audit_arguments {
            out.insert("audit_arguments".into(), true.into());
        }
        if let Some(secs) = self.idle_timeout_secs {
            out.insert("idle_timeout_secs".into(), secs.into());
        }
        Value::Object(out)
    }

    /// The flat user form with every secret field of the table (env values, header values,
    /// auth keys, tokens and passwords) replaced by `"<redacted>"`. Use this for anything
    /// shown to people.
    pub fn redacted(&self) -> Value {
        let mut flat = self.to_flat_json();
        for path in fields::secret_paths() {
            redact(&mut flat, &path);
        }
        flat
    }
}

fn auth_json(auth: &Auth) -> Value {
    match auth {
        Auth::ApiKey { key, header } => {
            let mut a = json!({"type": "api_key", "key": key});
            if let Some(h) = header {
                a["header"] = h.clone().into();
            }
            a
        }
        Auth::Bearer { token } => json!({"type": "bearer", "token": token}),
        Auth::Basic { username, password } => {
            json!({"type": "basic", "username": username, "password": password})
        }
    }
}

/// Replaces the value at `path` (every value, if it is an object) by [`REDACTED`].
fn redact(value: &mut Value, path: &[&str]) {
    let Some((first, rest)) = path.split_first() else {
        match value {
            Value::Object(map) => map.values_mut().for_each(|v| *v = REDACTED.into()),
            other => *other = REDACTED.into(),
        }
        return;
    };
    if let Some(inner) = value.get_mut(*first) {
        redact(inner, rest);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{full_specs, SECRETS};
    use super::super::{fields, from_value};
    use super::*;

    /// The dotted paths of a flat form's fields, down to the table's depth.
    fn paths(value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in value.as_object().into_iter().flatten() {
            match v {
                Value::Object(inner)
                    if ["auth", "placement", "rate_limit", "sandbox"].contains(&k.as_str()) =>
                {
                    out.extend(inner.keys().map(|i| format!("{k}.{i}")))
                }
                _ => out.push(k.clone()),
            }
        }
        out
    }

    #[test]
    fn flat_form_round_trips() {
        for spec in full_specs() {
            assert_eq!(from_value(spec.to_flat_json()).unwrap(), spec);
        }
    }

    #[test]
    fn flat_forms_carry_every_stored_field_of_the_table() {
        let mut seen: Vec<String> = full_specs()
            .iter()
            .flat_map(|s| paths(&s.to_flat_json()))
            .collect();
        seen.sort();
        seen.dedup();
        // `host` is a shorthand for `url`; `id` is ignored.
        let mut table: Vec<String> = fields::FIELDS
            .iter()
            .map(|f| f.name.to_owned())
            .filter(|n| !["host", "id"].contains(&n.as_str()))
            .collect();
        table.sort();
        assert_eq!(seen, table);
    }

    #[test]
    fn redacted_hides_every_secret() {
        let text: String = full_specs()
            .iter()
            .map(|s| s.redacted().to_string())
            .collect();
        for secret in SECRETS {
            assert!(!text.contains(secret), "{text}");
        }
        for shown in ["\"K\"", "X-Team", "X-K", "\"u\"", REDACTED] {
            assert!(text.contains(shown), "{shown} in {text}");
        }
    }
}
