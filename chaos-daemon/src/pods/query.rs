//! Parses pod targets: `pod:<namespace>/<name>` and `pods:<namespace>?labelSelector=<selector>`.

use super::Error;

/// Which pods a target names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// `None`: every namespace (`pods:*`).
    pub namespace: Option<String>,
    /// One pod by name (`pod:`), or `None` for a selector.
    pub name: Option<String>,
    /// Kubernetes label selector (`app=postgres,role in (replica)`); empty = every pod.
    pub selector: String,
}

impl Query {
    /// True when `target` is a pod target (`pod:` or `pods:`), which needs the cluster.
    pub fn is_pod_target(target: &str) -> bool {
        let target = target.trim_start();
        target.starts_with("pod:") || target.starts_with("pods:")
    }

    /// Parses a `pod:`/`pods:` target; `Invalid` names the form expected.
    pub fn parse(target: &str) -> Result<Self, Error> {
        let target = target.trim();
        if let Some(rest) = target.strip_prefix("pod:") {
            let (namespace, name) = rest.split_once('/').ok_or_else(|| {
                Error::Invalid(format!(
                    "{target:?} names no namespace; use pod:<namespace>/<name>"
                ))
            })?;
            check_name("namespace", namespace)?;
            check_name("pod name", name)?;
            return Ok(Self {
                namespace: Some(namespace.to_string()),
                name: Some(name.to_string()),
                selector: String::new(),
            });
        }
        let rest = target.strip_prefix("pods:").ok_or_else(|| {
            Error::Invalid(format!(
                "{target:?} is not a pod target; use pod:<namespace>/<name> or \
                 pods:<namespace>?labelSelector=<selector>"
            ))
        })?;
        let (namespace, params) = rest.split_once('?').unwrap_or((rest, ""));
        let namespace = match namespace {
            "*" => None,
            ns => {
                check_name("namespace", ns)?;
                Some(ns.to_string())
            }
        };
        let mut selector = String::new();
        for param in params.split('&').filter(|p| !p.is_empty()) {
            match param.split_once('=') {
                Some(("labelSelector", value)) => selector = percent_decode(value)?,
                _ => {
                    return Err(Error::Invalid(format!(
                        "{target:?}: unknown parameter {param:?}; the one parameter is \
                         labelSelector=<selector>"
                    )))
                }
            }
        }
        if namespace.is_none() && selector.is_empty() {
            return Err(Error::Invalid(format!(
                "{target:?}: every pod of every namespace is not a target; name a namespace or \
                 give a labelSelector"
            )));
        }
        Ok(Self {
            namespace,
            name: None,
            selector,
        })
    }
}

/// A namespace or pod name: a DNS-1123 subdomain (lower-case alphanumerics, '-' and '.').
fn check_name(what: &str, value: &str) -> Result<(), Error> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what} {value:?} is not a Kubernetes name (lower-case letters, digits, '-', '.')"
        )))
    }
}

/// `%XX` escapes, as a selector copied from a URL has them (`app%3Dpostgres`).
fn percent_decode(value: &str) -> Result<String, Error> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    Error::Invalid(format!("labelSelector {value:?}: bad %-escape at {i}"))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::Invalid(format!("labelSelector {value:?} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::Query;

    #[test]
    fn parses_each_form() {
        let one = Query::parse("pod:db/postgres-0").unwrap();
        assert_eq!(one.namespace.as_deref(), Some("db"));
        assert_eq!(one.name.as_deref(), Some("postgres-0"));
        let sel = Query::parse("pods:db?labelSelector=app%3Dpostgres,role=replica").unwrap();
        assert_eq!(sel.selector, "app=postgres,role=replica");
        assert_eq!(sel.name, None);
        let all = Query::parse("pods:*?labelSelector=app=kafka").unwrap();
        assert_eq!(all.namespace, None);
        assert_eq!(Query::parse("pods:db").unwrap().selector, "");
    }

    #[test]
    fn refuses_malformed_targets() {
        for bad in [
            "pod:postgres-0",
            "pod:DB/x",
            "pod:db/",
            "pods:*",
            "pods:db?fieldSelector=x",
            "pods:db?labelSelector=%zz",
            "cgroup:/x",
        ] {
            assert!(Query::parse(bad).is_err(), "{bad}");
        }
        assert!(Query::is_pod_target("pods:db"));
        assert!(!Query::is_pod_target("pid:1"));
    }
}
