//! The guard rails over the whole cluster: `--max-targets` and `--max-percent` on every pod
//! that would be targeted, checked before any daemon hears of the fault. Each daemon checks
//! them again on its own node, which alone cannot see the pods of the others.

use super::census::Census;
use super::error::PluginError;
use super::target::PodTarget;
use crate::cli::args::WindowArgs;

/// Refuses when the pods that would be targeted exceed `--max-targets`, or (selectors only,
/// as the daemons read it) `--max-percent` of the running pods the target matches.
pub fn check(census: &Census, target: &PodTarget, window: &WindowArgs) -> Result<(), PluginError> {
    let targeted = census.eligible();
    if let Some(max) = window.max_targets.filter(|max| *max > 0) {
        if targeted > max as usize {
            return Err(PluginError::Guard(format!(
                "{} would target {targeted} pods across the cluster, more than --max-targets {max}",
                target.describe()
            )));
        }
    }
    if let Some(max) = window.max_percent.filter(|max| *max > 0.0) {
        let running = census.running();
        let share = targeted as f64 * 100.0 / running.max(1) as f64;
        if target.is_selector() && share > max {
            return Err(PluginError::Guard(format!(
                "{} would target {targeted} of the {running} running pods it matches across \
                 the cluster ({share:.1} %), more than --max-percent {max}",
                target.describe()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::plugin::census::{protected_namespaces, tests::pod};

    fn window(max_targets: Option<u32>, max_percent: Option<f64>) -> WindowArgs {
        WindowArgs {
            target: String::new(),
            container: None,
            dry_run: false,
            max_targets,
            max_percent,
            allow_protected: Vec::new(),
            lease: None,
            duration: Duration::from_secs(1),
            start_at: None,
        }
    }

    #[test]
    fn limits_hold_across_nodes() {
        // Three replicas on three nodes: each node alone holds a third.
        let pods = [
            pod("db", "a", "node-a", "Running"),
            pod("db", "b", "node-b", "Running"),
            pod("db", "c", "node-c", "Running"),
            pod("db", "d", "node-c", "Pending"),
        ];
        let census = Census::new(&pods, &protected_namespaces("faultline", &[]));
        let selector = PodTarget::Selector {
            namespace: Some("db".into()),
            selector: "app=postgres".into(),
        };
        assert!(check(&census, &selector, &window(Some(3), Some(100.0))).is_ok());
        assert!(check(&census, &selector, &window(None, None)).is_ok());
        let over = check(&census, &selector, &window(Some(2), None));
        let over = over.err().map(|e| (e.exit_code(), e.to_string()));
        assert_eq!(
            over,
            Some((
                4,
                "pods in db with labels app=postgres would target 3 pods across the cluster, \
                 more than --max-targets 2; nothing was sent"
                    .into()
            ))
        );
        let share = check(&census, &selector, &window(None, Some(50.0)));
        let share = share.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(share.contains("3 of the 3 running pods"), "{share}");
    }

    #[test]
    fn max_percent_ignores_single_pods() {
        let pods = [pod("db", "a", "node-a", "Running")];
        let census = Census::new(&pods, &[]);
        let one = PodTarget::Pod {
            namespace: "db".into(),
            name: "a".into(),
        };
        assert!(check(&census, &one, &window(None, Some(10.0))).is_ok());
    }
}
