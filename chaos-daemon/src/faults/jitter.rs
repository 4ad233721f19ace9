//! Jitter distributions: the quantile tables the impairment program draws from.
//!
//! Each table holds [`DIST_SIZE`] quantiles of a distribution with mean 0 and standard
//! deviation 1, in units of 1/[`DIST_ONE`]; the program picks one at random and scales it by
//! the fault's jitter, as netem does with iproute2's tables. The tables are made here from
//! the distributions' inverse CDFs, then re-centred and re-scaled so that the table itself
//! (what the program draws from) has mean 0 and deviation 1 exactly: the mean delay is the
//! requested latency and the spread the requested jitter, tails included.
use chaos_common::{
    net::{DIST_ONE, DIST_SIZE},
    shape::{JitterTable, JitterTables},
};

/// Shape of the Pareto distribution (netem's tables use 3: finite mean and variance).
const PARETO_SHAPE: f64 = 3.0;

/// The tables in map order: normal, pareto, paretonormal (netem's mix, 25 % normal).
pub fn tables() -> Box<JitterTables> {
    let all = [
        standardized(normal_quantile),
        standardized(pareto_quantile),
        standardized(|p| 0.25 * normal_quantile(p) + 0.75 * standard_pareto(pareto_quantile(p))),
    ];
    Box::new(all.map(|quantiles| JitterTable { quantiles }))
}

/// A table of `quantile` at the middle of each of the DIST_SIZE equal-probability bins,
/// scaled to mean 0 and deviation 1.
fn standardized(quantile: impl Fn(f64) -> f64) -> [i32; DIST_SIZE as usize] {
    let n = DIST_SIZE as usize;
    let raw: Vec<f64> = (0..n)
        .map(|i| quantile((i as f64 + 0.5) / n as f64))
        .collect();
    let mean = raw.iter().sum::<f64>() / n as f64;
    let var = raw.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
    let sd = var.sqrt();
    let mut table = [0; DIST_SIZE as usize];
    for (q, x) in table.iter_mut().zip(&raw) {
        *q = ((x - mean) / sd * DIST_ONE as f64).round() as i32;
    }
    table
}

/// Pareto with scale 1: x = (1 − p)^(−1/α).
fn pareto_quantile(p: f64) -> f64 {
    (1.0 - p).powf(-1.0 / PARETO_SHAPE)
}

/// A Pareto value moved to mean 0 and deviation 1 (α = 3, scale 1: mean 3/2, var 3/4).
fn standard_pareto(x: f64) -> f64 {
    let a = PARETO_SHAPE;
    let mean = a / (a - 1.0);
    let sd = (a / ((a - 1.0).powi(2) * (a - 2.0))).sqrt();
    (x - mean) / sd
}

/// Inverse of the standard normal CDF (Acklam's rational approximation, relative error
/// below 1.2e-9: far below a table step).
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    const LOW: f64 = 0.024_25;
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(table: &[i32]) -> (f64, f64) {
        let n = table.len() as f64;
        let xs: Vec<f64> = table.iter().map(|&v| v as f64 / DIST_ONE as f64).collect();
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn every_table_has_mean_zero_and_deviation_one() {
        for table in tables().iter().map(|t| &t.quantiles) {
            let (mean, sd) = moments(table);
            assert!(mean.abs() < 1e-3, "mean {mean}");
            assert!((sd - 1.0).abs() < 1e-3, "sd {sd}");
            assert!(table.windows(2).all(|w| w[0] <= w[1]), "quantiles ascend");
        }
    }

    #[test]
    fn normal_quantiles_are_right() {
        assert!(normal_quantile(0.5).abs() < 1e-9);
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
        assert!((normal_quantile(0.001) + 3.090_232).abs() < 1e-5);
    }

    #[test]
    fn pareto_is_skewed_right() {
        let pareto = &tables()[1].quantiles;
        // Most draws sit below the mean, a long tail above it.
        let below = pareto.iter().filter(|&&v| v < 0).count();
        assert!(below > DIST_SIZE as usize * 6 / 10, "{below}");
        assert!(pareto[DIST_SIZE as usize - 1] > 5 * DIST_ONE as i32);
    }
}
