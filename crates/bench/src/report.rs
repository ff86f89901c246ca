//! Results: per-run numbers, medians across repeats, the targets of issue 3, the comparison
//! with an older build, and the two ways of printing them (a markdown table, or one JSON
//! document).

use std::fmt::Write as _;

use serde::Serialize;

use crate::cluster::ClusterReport;
use crate::load::Outcome;
use crate::realtime::RealtimeReport;
use crate::scenarios::Target;
use crate::webhooks::WebhooksReport;

const MB: f64 = 1_000_000.0;

/// One measurement of one server.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub requests_per_sec: f64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// CPU time the server used over the window, in cores (1.0 = one core busy throughout).
    pub server_cpu_cores: f64,
    /// The SQLite writer thread's part of `server_cpu_cores`.
    pub writer_cpu_cores: f64,
    pub server_rss_mb: f64,
    /// The load generator's own CPU use: near 1.0 when pinned means it may be the bottleneck.
    pub generator_cpu_cores: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl Run {
    pub fn of(outcome: &Outcome) -> Self {
        let secs = outcome.window.as_secs_f64();
        let ms = |q: f64| outcome.latency.value_at_quantile(q) as f64 / 1000.0;
        Self {
            requests_per_sec: outcome.requests as f64 / secs,
            requests: outcome.requests,
            errors: outcome.errors,
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: outcome.latency.max() as f64 / 1000.0,
            server_cpu_cores: outcome.server_cpu.as_secs_f64() / secs,
            writer_cpu_cores: outcome.writer_cpu.as_secs_f64() / secs,
            server_rss_mb: outcome.server_rss as f64 / MB,
            generator_cpu_cores: outcome.generator_cpu.as_secs_f64() / secs,
            first_error: outcome.first_error.clone(),
        }
    }
}

/// The repeats of one measurement and their median (each number's median on its own;
/// errors are the sum over all repeats).
#[derive(Debug, Serialize)]
pub struct Series {
    pub median: Run,
    pub runs: Vec<Run>,
}

impl Series {
    pub fn new(runs: Vec<Run>) -> Self {
        let m = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
        let median = Run {
            requests_per_sec: m(|r| r.requests_per_sec),
            requests: m(|r| r.requests as f64) as u64,
            errors: runs.iter().map(|r| r.errors).sum(),
            p50_ms: m(|r| r.p50_ms),
            p90_ms: m(|r| r.p90_ms),
            p99_ms: m(|r| r.p99_ms),
            p999_ms: m(|r| r.p999_ms),
            max_ms: m(|r| r.max_ms),
            server_cpu_cores: m(|r| r.server_cpu_cores),
            writer_cpu_cores: m(|r| r.writer_cpu_cores),
            server_rss_mb: m(|r| r.server_rss_mb),
            generator_cpu_cores: m(|r| r.generator_cpu_cores),
            first_error: runs.iter().find_map(|r| r.first_error.clone()),
        };
        Self { median, runs }
    }
}

pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// `a[i] / b[i]` for every repeat `i`: each ratio compares two measurements taken back to
/// back, which cancels most of this shared machine's drift.
fn paired_ratios(a: &Series, b: &Series, f: impl Fn(&Run) -> f64) -> Vec<f64> {
    a.runs
        .iter()
        .zip(&b.runs)
        .map(|(a, b)| f(a) / f(b))
        .collect()
}

/// Median over repeats of `a[i] / b[i]`.
pub fn paired_ratio(a: &Series, b: &Series, f: impl Fn(&Run) -> f64) -> f64 {
    median(paired_ratios(a, b, f))
}

/// Closed loop: two builds whose req/s differ by less than this are never told apart.
/// Back-to-back runs of one build on this shared machine differ by a few percent.
const THROUGHPUT_NOISE_FLOOR: f64 = 0.05;
/// Open loop: the same for p99, which a single scheduler hiccup moves far more than req/s.
const P99_NOISE_FLOOR: f64 = 0.25;

/// Whether this build is slower than the --against build, beyond noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Slower,
    WithinNoise,
    Faster,
}

/// What two servers are compared on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Throughput,
    P99,
}

impl Measure {
    /// Closed loop: throughput at saturation. Open loop offers every server the same rate:
    /// latency is what differs.
    pub fn compared(open_loop: bool) -> Self {
        if open_loop {
            Measure::P99
        } else {
            Measure::Throughput
        }
    }

    fn of(self, run: &Run) -> f64 {
        match self {
            Measure::Throughput => run.requests_per_sec,
            Measure::P99 => run.p99_ms,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Measure::Throughput => "req/s",
            Measure::P99 => "p99",
        }
    }
}

impl Serialize for Measure {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.label())
    }
}

/// This build's liveroom against the --against build's, in one scenario.
#[derive(Debug, Serialize)]
pub struct AgainstComparison {
    /// Median over repeats of this build's req/s ÷ the against build's.
    pub throughput_ratio: f64,
    /// Median over repeats of this build's p99 ÷ the against build's.
    pub p99_ratio: f64,
    pub compared: Measure,
    /// This build's ÷ the against build's `compared`, one per repeat.
    pub ratios: Vec<f64>,
    /// The verdict's tolerance around 1.0: the measure's noise floor, or half the spread of
    /// `ratios` if that is wider.
    pub noise: f64,
    pub verdict: Verdict,
}

impl AgainstComparison {
    pub fn new(new: &Series, against: &Series, compared: Measure) -> Self {
        let throughput_ratio = paired_ratio(new, against, |r| r.requests_per_sec);
        let p99_ratio = paired_ratio(new, against, |r| r.p99_ms);
        let ratios = paired_ratios(new, against, |r| compared.of(r));
        let (low, high) = ratios
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &r| {
                (lo.min(r), hi.max(r))
            });
        // Fewer req/s is slower; a higher p99 is slower.
        let (speedup, floor) = match compared {
            Measure::Throughput => (throughput_ratio, THROUGHPUT_NOISE_FLOOR),
            Measure::P99 => (1.0 / p99_ratio, P99_NOISE_FLOOR),
        };
        let noise = ((high - low) / 2.0).max(floor);
        let verdict = if speedup < 1.0 - noise {
            Verdict::Slower
        } else if speedup > 1.0 + noise {
            Verdict::Faster
        } else {
            Verdict::WithinNoise
        };
        Self {
            throughput_ratio,
            p99_ratio,
            compared,
            ratios,
            noise,
            verdict,
        }
    }

    /// The median ratio the verdict is about.
    pub fn ratio(&self) -> f64 {
        match self.compared {
            Measure::Throughput => self.throughput_ratio,
            Measure::P99 => self.p99_ratio,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    /// Offered requests per second in open loop; absent in closed loop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offered_rate: Option<f64>,
    pub liveroom: Series,
    /// The --against build's liveroom.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against: Option<Series>,
    pub baseline: Series,
    /// Median over repeats of liveroom's requests/s ÷ the baseline's.
    pub throughput_ratio: f64,
    /// Median over repeats of liveroom's p99 ÷ the baseline's.
    pub p99_ratio: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_against: Option<AgainstComparison>,
    #[serde(skip)]
    pub target: Option<Target>,
}

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub at_scale: Series,
    pub at_reference: Series,
    /// Median over repeats of throughput at scale ÷ throughput at the reference size.
    pub ratio: f64,
}

#[derive(Debug, Serialize)]
pub struct ScaleReport {
    pub rooms: u64,
    /// The size compared against: the main data set.
    pub reference_rooms: u64,
    pub preload_secs: f64,
    /// Metadata key + value bytes of all rooms.
    pub raw_metadata_mb: f64,
    /// Process spawn to first successful `get_room_metadata`, right after the preload.
    pub first_start_secs: f64,
    /// The same after SIGKILL of the warmed-up server.
    pub restart_after_kill_secs: f64,
    /// Reading every room once, closed loop; its `requests` are the rooms read.
    pub warmup: Run,
    pub warmup_secs: f64,
    pub rss_after_warmup_mb: f64,
    pub rss_limit_mb: f64,
    pub get: Comparison,
    pub set: Comparison,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub placement: String,
    pub build: &'static str,
    pub data_dir: String,
    pub data_filesystem: String,
}

#[derive(Debug, Serialize)]
pub struct Settings {
    pub quick: bool,
    pub repeats: usize,
    pub duration_secs: f64,
    pub warmup_secs: f64,
    pub connections: usize,
    pub rooms: u64,
    pub scale_rooms: u64,
    pub open_rate: f64,
    /// Whether this build's liveroom logged every request (production's subscriber, to a file).
    pub request_log: bool,
    /// What that log wrote over the run, in MB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_log_mb: Option<f64>,
    /// The older liveroom-bench executable measured beside this one, which never logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TargetCheck {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub settings: Settings,
    pub scenarios: Vec<ScenarioReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScaleReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime: Option<RealtimeReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<WebhooksReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterReport>,
    pub targets: Vec<TargetCheck>,
    /// Failed requests (and real-time and webhook failures) over the whole run; must be 0.
    pub errors: u64,
}

impl Report {
    pub fn new(
        machine: Machine,
        settings: Settings,
        scenarios: Vec<ScenarioReport>,
        scale: Option<ScaleReport>,
        realtime: Option<RealtimeReport>,
        webhooks: Option<WebhooksReport>,
        cluster: Option<ClusterReport>,
    ) -> Self {
        let mut targets = scenario_targets(&scenarios);
        targets.extend(against_target(&scenarios, settings.request_log));
        targets.extend(scale.as_ref().map(scale_targets).into_iter().flatten());
        targets.extend(realtime.iter().flat_map(RealtimeReport::targets));
        targets.extend(webhooks.iter().flat_map(WebhooksReport::targets));
        targets.extend(cluster.iter().flat_map(ClusterReport::targets));
        let mut report = Self {
            machine,
            settings,
            scenarios,
            scale,
            realtime,
            webhooks,
            cluster,
            targets,
            errors: 0,
        };
        report.errors = report.runs().map(|r| r.errors).sum::<u64>()
            + report.realtime.as_ref().map_or(0, |r| r.errors)
            + report.webhooks.as_ref().map_or(0, |w| w.errors)
            + report.cluster.as_ref().map_or(0, |c| c.errors);
        report
    }

    /// Every run of every server, warm-up included.
    fn runs(&self) -> impl Iterator<Item = &Run> {
        let scenarios = self
            .scenarios
            .iter()
            .flat_map(|s| [Some(&s.liveroom), s.against.as_ref(), Some(&s.baseline)])
            .flatten();
        let scale = self.scale.iter().flat_map(|s| {
            [
                &s.get.at_scale,
                &s.get.at_reference,
                &s.set.at_scale,
                &s.set.at_reference,
            ]
        });
        let warmup = self.scale.iter().map(|s| &s.warmup);
        scenarios
            .chain(scale)
            .flat_map(|series| &series.runs)
            .chain(warmup)
    }

    pub fn first_error(&self) -> Option<&str> {
        self.runs()
            .find_map(|r| r.first_error.as_deref())
            .or_else(|| self.realtime.as_ref()?.first_error.as_deref())
            .or_else(|| self.webhooks.as_ref()?.first_error.as_deref())
            .or_else(|| self.cluster.as_ref()?.first_error.as_deref())
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let s = &self.settings;
        let _ = writeln!(
            out,
            "Machine: {} CPUs ({}), {}; {} build; data in {} ({}).",
            m.nproc, m.cpu_model, m.placement, m.build, m.data_dir, m.data_filesystem,
        );
        match s.request_log_mb {
            Some(mb) => {
                let _ = writeln!(
                    out,
                    "Request log: on, as in production (its subscriber at info: one line per request, to a \
                     file; {mb:.1} MB written). `--request-log off` measures liveroom without it."
                );
            }
            None => out.push_str(
                "Request log: off (`--request-log off`): liveroom installs no log subscriber.\n",
            ),
        }
        if let Some(path) = &s.against {
            let _ = writeln!(
                out,
                "Against: {path} as \"liveroom (against)\": its own preload into its own data \
                 directory, on the CPUs of the other servers, measured in the same runs right beside \
                 this build (the two take turns going first). It runs WITHOUT request logging (older \
                 builds install no log subscriber){}. The scale scenario runs this build only.",
                if s.request_log {
                    "; for an apples-to-apples comparison measure this build with `--request-log off`"
                } else {
                    ", as does this build here: like for like"
                }
            );
        }
        let _ = writeln!(
            out,
            "Run: {}{} s measured after {} s warm-up, × {} repeat(s) (medians shown), {} connections, \
             {} preloaded rooms, open loop at {} req/s.\n",
            if s.quick {
                "QUICK smoke run (numbers are not meaningful): "
            } else {
                ""
            },
            s.duration_secs,
            s.warmup_secs,
            s.repeats,
            s.connections,
            s.rooms,
            s.open_rate,
        );
        let table = Table {
            with_against: s.against.is_some(),
        };
        if !self.scenarios.is_empty() || self.scale.is_some() {
            table.header(&mut out);
        }
        for sc in &self.scenarios {
            let measure = Measure::compared(sc.offered_rate.is_some());
            let versus_baseline = |series: &Series| {
                let ratio = paired_ratio(series, &sc.baseline, |r| measure.of(r));
                format!("{ratio:.2}× {}", measure.label())
            };
            let versus_against = sc.vs_against.as_ref().map_or(String::new(), |v| {
                format!("{:.2}× {}", v.ratio(), v.compared.label())
            });
            table.row(
                &mut out,
                &sc.name,
                "liveroom",
                &sc.liveroom.median,
                &versus_baseline(&sc.liveroom),
                &versus_against,
            );
            if let Some(against) = &sc.against {
                let versus = versus_baseline(against);
                table.row(
                    &mut out,
                    "",
                    "liveroom (against)",
                    &against.median,
                    &versus,
                    "",
                );
            }
            table.row(&mut out, "", "baseline", &sc.baseline.median, "", "");
        }
        if let Some(sc) = &self.scale {
            for (op, cmp) in [
                ("get_room_metadata", &sc.get),
                ("set_room_metadata", &sc.set),
            ] {
                let versus = format!(
                    "{:.2}× of {} rooms",
                    cmp.ratio,
                    thousands(sc.reference_rooms as f64)
                );
                let name = format!("{op} at {} rooms", thousands(sc.rooms as f64));
                table.row(
                    &mut out,
                    &name,
                    "liveroom",
                    &cmp.at_scale.median,
                    &versus,
                    "",
                );
                let name = format!("{op} at {} rooms", thousands(sc.reference_rooms as f64));
                table.row(
                    &mut out,
                    &name,
                    "liveroom",
                    &cmp.at_reference.median,
                    "",
                    "",
                );
            }
            let _ = writeln!(
                out,
                "\nScale, {} rooms × 3 keys × {} B values: preload {:.1} s; raw metadata {:.0} MB; spawn to first \
                 answer {:.2} s after the preload, {:.2} s after SIGKILL; warm-up read {} rooms in {:.1} s \
                 ({} req/s); RSS after warm-up {:.0} MB (limit {:.0} MB).",
                thousands(sc.rooms as f64),
                crate::children::VALUE_BYTES,
                sc.preload_secs,
                sc.raw_metadata_mb,
                sc.first_start_secs,
                sc.restart_after_kill_secs,
                thousands(sc.warmup.requests as f64),
                sc.warmup_secs,
                thousands(sc.warmup.requests_per_sec),
                sc.rss_after_warmup_mb,
                sc.rss_limit_mb,
            );
        }
        let compared = against_comparisons(&self.scenarios);
        if !compared.is_empty() {
            let _ = writeln!(
                out,
                "\nThis build against the --against build (median of {} paired run(s){}):\n",
                s.repeats,
                if s.repeats < 3 {
                    "; too few to measure the noise, so only its floor applies: use --repeat 3 or more"
                } else {
                    ""
                }
            );
            for (name, v) in compared {
                let ratios: Vec<String> = v.ratios.iter().map(|r| format!("{r:.2}")).collect();
                let verdict = match v.verdict {
                    Verdict::Slower => "**slower** beyond noise",
                    Verdict::WithinNoise => "not slower beyond noise",
                    Verdict::Faster => "faster beyond noise",
                };
                let _ = writeln!(
                    out,
                    "- {name}: {:.2}× the against build's {} (runs: {}; noise ±{:.0} %): {verdict}.",
                    v.ratio(),
                    v.compared.label(),
                    ratios.join(", "),
                    v.noise * 100.0,
                );
            }
        }
        if let Some(realtime) = &self.realtime {
            out.push_str(&realtime.to_markdown());
        }
        if let Some(cluster) = &self.cluster {
            out.push_str(&cluster.to_markdown());
        }
        if let Some(webhooks) = &self.webhooks {
            out.push_str(&webhooks.to_markdown());
        }
        out.push('\n');
        out.push_str("| target | required | measured | |\n|---|---|---|---|\n");
        for t in &self.targets {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                t.what,
                t.target,
                t.measured,
                if t.met { "met" } else { "**NOT met**" }
            );
        }
        let _ = writeln!(out, "\nFailed requests: {}.", self.errors);
        if let Some(e) = self.first_error() {
            let _ = writeln!(out, "First failure: {e}");
        }
        out
    }
}

/// The results table, whose "vs against" column is there only with an --against build.
struct Table {
    with_against: bool,
}

impl Table {
    fn header(&self, out: &mut String) {
        let (against, align) = if self.with_against {
            (" vs against |", "--:|")
        } else {
            ("", "")
        };
        let _ = writeln!(
            out,
            "| scenario | server | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | errors | vs baseline |{against} \
             server CPU | server RSS | generator CPU |\n\
             |---|---|--:|--:|--:|--:|--:|--:|--:|{align}--:|--:|--:|"
        );
    }

    fn row(
        &self,
        out: &mut String,
        name: &str,
        server: &str,
        r: &Run,
        vs_baseline: &str,
        vs_against: &str,
    ) {
        let against = if self.with_against {
            format!(" {vs_against} |")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {name} | {server} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {vs_baseline} |{against} {:.2} cores | \
             {:.0} MB | {:.2} cores |",
            thousands(r.requests_per_sec),
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.p999_ms,
            r.errors,
            r.server_cpu_cores,
            r.server_rss_mb,
            r.generator_cpu_cores,
        );
    }
}

/// `12345.6` → `12,346`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Achieved below this share of the offered rate, an open-loop latency is not a pass.
const ACHIEVED_SHARE: f64 = 0.95;

fn scenario_targets(scenarios: &[ScenarioReport]) -> Vec<TargetCheck> {
    let mut checks = Vec::new();
    for sc in scenarios {
        match sc.target {
            Some(Target::Ratio(min)) => checks.push(TargetCheck {
                what: format!("{} throughput", sc.name),
                target: format!("≥ {min:.2} × baseline"),
                measured: format!(
                    "{:.2} × ({} vs {} req/s)",
                    sc.throughput_ratio,
                    thousands(sc.liveroom.median.requests_per_sec),
                    thousands(sc.baseline.median.requests_per_sec)
                ),
                met: sc.throughput_ratio >= min,
            }),
            Some(Target::P99Ms(max)) => {
                let offered = sc.offered_rate.unwrap_or(f64::NAN);
                let achieved = sc.liveroom.median.requests_per_sec;
                let p99 = sc.liveroom.median.p99_ms;
                checks.push(TargetCheck {
                    what: format!("{}, p99 at {} req/s offered", sc.name, thousands(offered)),
                    target: format!("≤ {max} ms (and the rate achieved)"),
                    measured: format!("{p99:.3} ms at {} req/s achieved", thousands(achieved)),
                    met: p99 <= max && achieved >= ACHIEVED_SHARE * offered,
                })
            }
            None => {}
        }
    }
    checks
}

/// Each scenario's name and comparison with the --against build, if one was measured.
fn against_comparisons(scenarios: &[ScenarioReport]) -> Vec<(&str, &AgainstComparison)> {
    scenarios
        .iter()
        .filter_map(|sc| Some((sc.name.as_str(), sc.vs_against.as_ref()?)))
        .collect()
}

/// The "no scenario slower than before", when an --against build was measured.
fn against_target(scenarios: &[ScenarioReport], request_log: bool) -> Option<TargetCheck> {
    let compared = against_comparisons(scenarios);
    if compared.is_empty() {
        return None;
    }
    let slower: Vec<String> = compared
        .iter()
        .filter(|(_, v)| v.verdict == Verdict::Slower)
        .map(|(name, v)| format!("{name} ({:.2}× {})", v.ratio(), v.compared.label()))
        .collect();
    Some(TargetCheck {
        what: format!(
            "every scenario vs the --against build{}",
            if request_log {
                " (this build logs requests, the against build does not)"
            } else {
                ""
            }
        ),
        target: "not slower beyond noise".into(),
        measured: if slower.is_empty() {
            format!("none of {} slower", compared.len())
        } else {
            format!("slower: {}", slower.join(", "))
        },
        met: slower.is_empty(),
    })
}

fn scale_targets(scale: &ScaleReport) -> Vec<TargetCheck> {
    let mut checks = Vec::new();
    let rooms = thousands(scale.rooms as f64);
    let not_1m = if scale.rooms == 1_000_000 {
        ""
    } else {
        " (issue: 1,000,000)"
    };
    checks.push(TargetCheck {
        what: format!("{rooms} rooms{not_1m}: resident memory"),
        target: format!(
            "≤ 2 × raw key+value bytes + 200 MB = {:.0} MB",
            scale.rss_limit_mb
        ),
        measured: format!("{:.0} MB", scale.rss_after_warmup_mb),
        met: scale.rss_after_warmup_mb <= scale.rss_limit_mb,
    });
    let restart = scale.first_start_secs.max(scale.restart_after_kill_secs);
    checks.push(TargetCheck {
        what: format!("{rooms} rooms{not_1m}: restart to first answered request"),
        target: "≤ 5 s".into(),
        measured: format!(
            "{:.2} s after a clean stop, {:.2} s after SIGKILL",
            scale.first_start_secs, scale.restart_after_kill_secs
        ),
        met: restart <= 5.0,
    });
    let worst = scale.get.ratio.min(scale.set.ratio);
    checks.push(TargetCheck {
        what: format!(
            "throughput at {rooms} rooms{not_1m} vs {} rooms",
            thousands(scale.reference_rooms as f64)
        ),
        target: "≥ 0.9 ×".into(),
        measured: format!("get {:.2} ×, set {:.2} ×", scale.get.ratio, scale.set.ratio),
        met: worst >= 0.9,
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }

    fn run(requests_per_sec: f64, p99_ms: f64) -> Run {
        Run {
            requests_per_sec,
            requests: 0,
            errors: 0,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p99_ms,
            p999_ms: 0.0,
            max_ms: 0.0,
            server_cpu_cores: 0.0,
            writer_cpu_cores: 0.0,
            server_rss_mb: 0.0,
            generator_cpu_cores: 0.0,
            first_error: None,
        }
    }

    fn series(runs: &[(f64, f64)]) -> Series {
        Series::new(runs.iter().map(|&(rps, p99)| run(rps, p99)).collect())
    }

    #[test]
    fn against_verdicts_on_throughput() {
        let verdict = |new: &[(f64, f64)], old: &[(f64, f64)]| {
            AgainstComparison::new(&series(new), &series(old), Measure::Throughput).verdict
        };
        assert_eq!(verdict(&[(90.0, 1.0)], &[(100.0, 1.0)]), Verdict::Slower);
        assert_eq!(
            verdict(&[(97.0, 1.0)], &[(100.0, 1.0)]),
            Verdict::WithinNoise
        );
        assert_eq!(verdict(&[(110.0, 1.0)], &[(100.0, 1.0)]), Verdict::Faster);
        // Ratios 0.70, 0.90, 1.10: the median is 0.90, but the runs spread ±20 %.
        let spread = AgainstComparison::new(
            &series(&[(70.0, 1.0), (90.0, 1.0), (110.0, 1.0)]),
            &series(&[(100.0, 1.0); 3]),
            Measure::Throughput,
        );
        assert!((spread.noise - 0.2).abs() < 1e-9);
        assert_eq!(spread.verdict, Verdict::WithinNoise);
    }

    #[test]
    fn against_verdicts_on_latency() {
        let verdict = |new_p99: f64| {
            AgainstComparison::new(
                &series(&[(100.0, new_p99)]),
                &series(&[(100.0, 1.0)]),
                Measure::P99,
            )
            .verdict
        };
        assert_eq!(verdict(2.0), Verdict::Slower);
        assert_eq!(verdict(1.1), Verdict::WithinNoise);
        assert_eq!(verdict(0.5), Verdict::Faster);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
