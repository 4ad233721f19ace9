//! Turns the pod positional or `--selector` into the daemon's pod target (`pod:ns/name`,
//! `pods:ns?labelSelector=…`).

use super::args::PodSelection;
use super::error::PluginError;

/// The pods a fault is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodTarget {
    /// One pod by name.
    Pod {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The pods a label selector matches.
    Selector {
        /// Their namespace; `None` for every namespace (`-A`).
        namespace: Option<String>,
        /// The label selector, as kubectl takes it.
        selector: String,
    },
}

impl PodTarget {
    /// The target `selection` names, `namespace` being `-n` or the context's namespace.
    pub fn from_selection(selection: &PodSelection, namespace: &str) -> Result<Self, PluginError> {
        if let Some(selector) = &selection.selector {
            let selector = selector.trim();
            if selector.is_empty() {
                return Err(PluginError::Argument {
                    flag: "--selector",
                    reason: "is empty; e.g. -l app=postgres,role=replica".into(),
                });
            }
            return Ok(Self::Selector {
                namespace: (!selection.all_namespaces).then(|| namespace.to_owned()),
                selector: selector.to_owned(),
            });
        }
        let pod = selection.pod.as_deref().unwrap_or_default().trim();
        let name = match pod.split_once('/') {
            None => pod,
            Some(("pod" | "pods" | "po", name)) => name,
            Some((kind, _)) => {
                return Err(PluginError::Argument {
                    flag: "POD",
                    reason: format!(
                        "{pod}: only pods can be targeted (NAME or pod/NAME), not {kind}; \
                         select a workload's pods with -l and its labels"
                    ),
                })
            }
        };
        if name.is_empty() || name.contains('/') {
            return Err(PluginError::Argument {
                flag: "POD",
                reason: format!("{pod:?} is not a pod name (NAME or pod/NAME)"),
            });
        }
        Ok(Self::Pod {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The target string the daemons take.
    pub fn to_target(&self) -> String {
        match self {
            Self::Pod { namespace, name } => format!("pod:{namespace}/{name}"),
            Self::Selector {
                namespace,
                selector,
            } => format!(
                "pods:{}?labelSelector={}",
                namespace.as_deref().unwrap_or("*"),
                escape(selector)
            ),
        }
    }

    /// The namespace every pod of the target is in; `None` for every namespace.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Self::Pod { namespace, .. } => Some(namespace),
            Self::Selector { namespace, .. } => namespace.as_deref(),
        }
    }

    /// Whether this is a selector (`--max-percent` applies only to selectors).
    pub fn is_selector(&self) -> bool {
        matches!(self, Self::Selector { .. })
    }

    /// The target as a person says it, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Pod { namespace, name } => format!("pod {namespace}/{name}"),
            Self::Selector {
                namespace: Some(ns),
                selector,
            } => format!("pods in {ns} with labels {selector}"),
            Self::Selector {
                namespace: None,
                selector,
            } => format!("pods in every namespace with labels {selector}"),
        }
    }
}

/// Escapes what the daemon's target parser reads as syntax (`%` escapes, `&` between
/// parameters) so a selector reaches it unchanged.
fn escape(selector: &str) -> String {
    let mut out = String::with_capacity(selector.len());
    for c in selector.chars() {
        match c {
            '%' => out.push_str("%25"),
            '&' => out.push_str("%26"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::Query;

    fn selection(pod: Option<&str>, selector: Option<&str>, all: bool) -> PodSelection {
        PodSelection {
            pod: pod.map(str::to_owned),
            selector: selector.map(str::to_owned),
            all_namespaces: all,
        }
    }

    #[test]
    fn pod_names_in_kubectl_forms() {
        for given in [
            "postgres-0",
            "pod/postgres-0",
            "pods/postgres-0",
            "po/postgres-0",
        ] {
            let target = PodTarget::from_selection(&selection(Some(given), None, false), "db");
            assert_eq!(
                target.ok().map(|t| t.to_target()),
                Some("pod:db/postgres-0".to_owned()),
                "{given}"
            );
        }
        for bad in ["deploy/web", "pod/", "", "a/b/c"] {
            let target = PodTarget::from_selection(&selection(Some(bad), None, false), "db");
            assert!(target.is_err(), "{bad}");
        }
    }

    #[test]
    fn selectors_round_trip_through_the_daemon_parser() {
        let cases = [
            (false, "app=postgres,role=replica"),
            (true, "tier in (db,cache),!canary"),
            (false, "odd%key=a&b"),
        ];
        for (all, selector) in cases {
            let target = PodTarget::from_selection(&selection(None, Some(selector), all), "db");
            let Ok(target) = target else {
                panic!("{selector}: refused");
            };
            let parsed = Query::parse(&target.to_target()).map_err(|e| e.to_string());
            let parsed = parsed.unwrap_or_else(|e| panic!("{selector}: {e}"));
            assert_eq!(parsed.selector, selector);
            assert_eq!(parsed.namespace.as_deref(), (!all).then_some("db"));
            assert_eq!(parsed.name, None);
        }
        let empty = PodTarget::from_selection(&selection(None, Some(" "), false), "db");
        assert!(empty.is_err());
    }
}
