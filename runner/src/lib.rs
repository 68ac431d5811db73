//! Host runner for rsm-rs: the logic behind the two README commands,
//! `cargo rsm demo` (the main job) and `cargo rsm test` (every test).
//!
//! Both commands are lists of [`Step`]s run in order from the workspace root,
//! stopping at the first failure. The step lists are plain data
//! ([`test_steps`], [`demo_steps`]) so later work can append steps (the QEMU
//! suite, fuzz corpus replay) without touching the execution logic.
//!
//! Nothing here is optional: there are no switches that skip a step.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod cluster;
pub mod conformance;
pub mod decode;
pub mod demo;
pub mod qemu;
pub mod serial;

use std::ffi::OsString;
use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};
use std::time::{Duration, Instant};

/// The bare-metal target that proves `rsm-core` builds without `std`.
pub const BARE_METAL_TARGET: &str = "x86_64-unknown-none";

/// The usage text printed by `cargo rsm help`.
pub const USAGE: &str = "\
rsm-runner: host tool for rsm-rs

Usage:
  cargo rsm demo          run the main job (the demo)
  cargo rsm test          run every test, stopping at the first failure
  cargo rsm test --list   print the test steps without running them
  cargo rsm decode FILE   decode every rsm-rs frame of a pcap capture (the switch's)
  cargo rsm qemu-smoke    boot the built image under QEMU into its self-checks
  cargo rsm qemu-conformance
                          run the conformance table inside the built image under QEMU
  cargo rsm bench         image nodes vs the raw emulated link (ratios, boot, size, idle CPU)
  cargo rsm qemu-bench [--smoke]
                          the bench's QEMU part alone (needs the built image)
  cargo rsm qemu-demo [--rounds N] [--dir DIR]
                          the demo's QEMU part alone (two nodes; needs the built image)
  cargo rsm help          print this help

Each command does its own set-up (`rustup target add x86_64-unknown-none`).
";

/// Exit code for a failed step.
const EXIT_FAILURE: u8 = 1;
/// Exit code for a command-line usage error.
const EXIT_USAGE: u8 = 2;

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cli {
    /// `test`: run every test step; with `--list`, only print the steps.
    Test {
        /// Print the steps instead of running them.
        list: bool,
    },
    /// `demo`: run the main job.
    Demo,
    /// `decode FILE`: print every frame of a pcap capture with rsm-core's wire parser.
    Decode {
        /// The capture.
        file: PathBuf,
    },
    /// `qemu-smoke`: boot the built image under QEMU into its three self-checks.
    QemuSmoke,
    /// `qemu-conformance`: run the single-node conformance table inside the built image.
    QemuConformance,
    /// `bench`: set-up, image build, then `qemu-bench`.
    Bench,
    /// `qemu-bench [--smoke]`: the benchmarks of image nodes against the raw link.
    QemuBench {
        /// The short run of the test command.
        smoke: bool,
    },
    /// `qemu-demo [--rounds N] [--dir DIR]`: boot the demo's two nodes from the built image
    /// and print the report.
    QemuDemo {
        /// Importer rounds (default [`demo::ROUNDS`]).
        rounds: u32,
        /// The run directory (default `target/runs/demo`).
        dir: Option<PathBuf>,
    },
    /// `help`, `-h`, `--help` or no arguments: print usage.
    Help,
}

/// The options of `qemu-demo`.
fn parse_qemu_demo(words: &[&str]) -> Result<Cli, UsageError> {
    let (mut rounds, mut dir) = (demo::ROUNDS, None);
    let mut it = words.iter();
    while let Some(w) = it.next() {
        match (*w, it.next()) {
            ("--rounds", Some(n)) => {
                rounds = n
                    .parse()
                    .ok()
                    .filter(|r| (1..=demo::MAX_ROUNDS).contains(r))
                    .ok_or_else(|| {
                        UsageError(format!("--rounds takes 1..={}", demo::MAX_ROUNDS))
                    })?;
            }
            ("--dir", Some(d)) => dir = Some(PathBuf::from(d)),
            (other, _) => {
                return Err(UsageError(format!(
                    "`qemu-demo` takes --rounds N and --dir DIR (got `{other}`)"
                )))
            }
        }
    }
    Ok(Cli::QemuDemo { rounds, dir })
}

/// A command line that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Parses the arguments that follow the program name.
///
/// # Errors
/// A [`UsageError`] for an unknown command, an unexpected argument or an
/// argument that is not valid UTF-8.
///
/// ```
/// use rsm_runner::{parse_args, Cli};
///
/// assert_eq!(parse_args(["test", "--list"]), Ok(Cli::Test { list: true }));
/// assert_eq!(parse_args(Vec::<String>::new()), Ok(Cli::Help));
/// assert!(parse_args(["frobnicate"]).is_err());
/// ```
pub fn parse_args<I, S>(args: I) -> Result<Cli, UsageError>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let mut words = Vec::new();
    for arg in args {
        let arg: OsString = arg.into();
        match arg.into_string() {
            Ok(word) => words.push(word),
            Err(raw) => return Err(UsageError(format!("argument {raw:?} is not valid UTF-8"))),
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] | ["help" | "-h" | "--help"] | ["demo" | "test", "-h" | "--help"] => Ok(Cli::Help),
        ["demo"] => Ok(Cli::Demo),
        ["decode", file] => Ok(Cli::Decode {
            file: PathBuf::from(file),
        }),
        ["decode", ..] => Err(UsageError("`decode` takes one pcap file".into())),
        ["qemu-smoke"] => Ok(Cli::QemuSmoke),
        ["qemu-conformance"] => Ok(Cli::QemuConformance),
        ["qemu-demo", rest @ ..] => parse_qemu_demo(rest),
        ["bench"] => Ok(Cli::Bench),
        ["qemu-bench"] => Ok(Cli::QemuBench { smoke: false }),
        ["qemu-bench", "--smoke"] => Ok(Cli::QemuBench { smoke: true }),
        ["test"] => Ok(Cli::Test { list: false }),
        ["test", "--list"] => Ok(Cli::Test { list: true }),
        ["demo", extra, ..] => Err(UsageError(format!(
            "`demo` takes no arguments (got `{extra}`)"
        ))),
        ["test", extra, ..] => Err(UsageError(format!(
            "`test` accepts only `--list` (got `{extra}`)"
        ))),
        [other, ..] => Err(UsageError(format!("unknown command `{other}`"))),
    }
}

// ---------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------

/// The program a [`Step`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// Cargo: the binary named by the `CARGO` environment variable when set
    /// (it is when the runner is started by `cargo run`), else `cargo`.
    Cargo,
    /// `rustup`, looked up on `PATH`.
    Rustup,
    /// Any other program, looked up on `PATH` unless it is a path.
    Other(String),
}

impl Program {
    /// The short name shown in headers and listings.
    pub fn display_name(&self) -> &str {
        match self {
            Program::Cargo => "cargo",
            Program::Rustup => "rustup",
            Program::Other(name) => name,
        }
    }

    /// The program to execute.
    pub fn resolve(&self) -> OsString {
        match self {
            Program::Cargo => std::env::var_os("CARGO")
                .filter(|cargo| !cargo.is_empty())
                .unwrap_or_else(|| OsString::from("cargo")),
            Program::Rustup => OsString::from("rustup"),
            Program::Other(name) => OsString::from(name),
        }
    }

    /// What to tell the user when the program cannot be found.
    fn not_found_hint(&self) -> String {
        match self {
            Program::Rustup => "`rustup` was not found on PATH. rsm-rs needs Rust installed \
                 through rustup (https://rustup.rs); if it is installed, run \
                 `source \"$HOME/.cargo/env\"` or add ~/.cargo/bin to PATH."
                .to_string(),
            Program::Cargo => format!(
                "cargo ({}) was not found. Install Rust through rustup (https://rustup.rs).",
                self.resolve().to_string_lossy()
            ),
            Program::Other(name) => format!("`{name}` was not found on PATH."),
        }
    }
}

/// One command of a job: a name, a program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Short name shown in headers and in the summary table.
    pub name: String,
    /// The program to run.
    pub program: Program,
    /// Its arguments.
    pub args: Vec<String>,
}

impl Step {
    /// Builds a step.
    pub fn new(name: impl Into<String>, program: Program, args: &[&str]) -> Self {
        Step {
            name: name.into(),
            program,
            args: args.iter().map(|arg| (*arg).to_string()).collect(),
        }
    }

    /// A cargo step.
    pub fn cargo(name: impl Into<String>, args: &[&str]) -> Self {
        Step::new(name, Program::Cargo, args)
    }

    /// The command line as shown to the user, e.g. `cargo fmt --all -- --check`.
    pub fn command_line(&self) -> String {
        let mut line = self.program.display_name().to_string();
        for arg in &self.args {
            line.push(' ');
            line.push_str(arg);
        }
        line
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.command_line())
    }
}

/// The set-up step both commands start with: install the bare-metal target.
/// It runs every time; rustup makes it cheap when the target is present.
pub fn setup_step() -> Step {
    Step::new(
        "setup",
        Program::Rustup,
        &["target", "add", BARE_METAL_TARGET],
    )
}

/// The tools the tests call that a fresh machine lacks: `tcpdump` (a pcap reader other than
/// ours, for the switch's capture) and QEMU (`qemu-system-x86_64`, for the image). Installed
/// with apt when missing; the step fails if they cannot be installed, so the tests that need
/// them never skip.
pub const TOOLS_SCRIPT: &str = "need=''; \
     command -v tcpdump >/dev/null 2>&1 || need=\"$need tcpdump\"; \
     command -v qemu-system-x86_64 >/dev/null 2>&1 || need=\"$need qemu-system-x86\"; \
     [ -z \"$need\" ] || { echo \"installing:$need\"; apt-get update -q && \
     DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need; }";

/// The image crate (outside the host workspace: it builds for [`BARE_METAL_TARGET`] with
/// its own flags in `targets/kernel/.cargo/config.toml`, read from that directory).
pub const IMAGE_DIR: &str = "targets/kernel";

/// Where the image is built, once per run (its own target dir).
pub const IMAGE_TARGET_DIR: &str = "target/image";

/// The image file passed to QEMU's `-kernel`.
pub const IMAGE_PATH: &str = "target/image/x86_64-unknown-none/release/rsm-kernel";

/// The image the QEMU commands and tests boot: `$RSM_IMAGE` if set, else [`IMAGE_PATH`]
/// under the workspace root (where the test command's `image build` step put it).
pub fn image_path() -> PathBuf {
    std::env::var_os("RSM_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(IMAGE_PATH))
}

/// `qemu-conformance`: the table in the image; fails unless every check that ran passed.
fn cmd_qemu_conformance() -> ExitCode {
    let dir = demo::run_dir("conformance");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: {}: {e}", dir.display());
        return ExitCode::from(EXIT_FAILURE);
    }
    match conformance::run(&image_path(), &dir.join("node-1.serial")) {
        Ok(r) => {
            if let Err(e) = std::fs::write(dir.join("node-1.log"), &r.serial) {
                eprintln!("error: {}: {e}", dir.display());
            }
            print!("{}", conformance::report(&r));
            let ok = r.reported()
                && r.status == Some(qemu::STATUS_PASS)
                && r.passed == r.ran
                && r.ran + r.excluded == r.total
                && r.leaks == 0;
            if ok {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "error: the image's conformance run failed (exit {:?}; log {})",
                    r.status,
                    dir.join("node-1.log").display()
                );
                ExitCode::from(EXIT_FAILURE)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Build the image once into [`IMAGE_TARGET_DIR`] (cargo runs in [`IMAGE_DIR`] so that its
/// configuration applies).
pub const IMAGE_BUILD_SCRIPT: &str = "cd targets/kernel && \
     \"${CARGO:-cargo}\" build --release --target-dir ../../target/image";

/// Lint the image crate as the host crates are linted.
pub const IMAGE_CLIPPY_SCRIPT: &str = "cd targets/kernel && \
     \"${CARGO:-cargo}\" clippy --release --target-dir ../../target/image -- -D warnings";

/// The step that builds the image once ([`IMAGE_BUILD_SCRIPT`]).
pub fn image_build_step() -> Step {
    Step::new(
        "image build",
        Program::Other("sh".into()),
        &["-c", IMAGE_BUILD_SCRIPT],
    )
}

/// A step that runs this runner's own `command` (release build, quiet).
fn runner_step(name: &str, command: &[&str]) -> Step {
    let mut args = vec!["run", "-q", "--release", "-p", "rsm-runner", "--"];
    args.extend_from_slice(command);
    Step::cargo(name, &args)
}

/// The step that installs [`TOOLS_SCRIPT`]'s tools.
pub fn tools_step() -> Step {
    Step::new("tools", Program::Other("sh".into()), &["-c", TOOLS_SCRIPT])
}

/// Every step of `cargo rsm test`, in order.
pub fn test_steps() -> Vec<Step> {
    vec![
        setup_step(),
        tools_step(),
        Step::cargo("fmt", &["fmt", "--all", "--", "--check"]),
        Step::cargo(
            "clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        Step::cargo(
            "no_std build",
            &[
                "build",
                "-p",
                "rsm-core",
                "-p",
                "rsm-conformance",
                "--target",
                BARE_METAL_TARGET,
            ],
        ),
        Step::cargo(
            "no_std build (defmt)",
            &[
                "build",
                "-p",
                "rsm-core",
                "--target",
                BARE_METAL_TARGET,
                "--features",
                "defmt",
            ],
        ),
        Step::cargo(
            "no_std clippy",
            &[
                "clippy",
                "-p",
                "rsm-core",
                "-p",
                "rsm-conformance",
                "--target",
                BARE_METAL_TARGET,
                "--",
                "-D",
                "warnings",
            ],
        ),
        Step::cargo(
            "fuzz clippy",
            &[
                "clippy",
                "--manifest-path",
                FUZZ_MANIFEST,
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        Step::cargo(
            "fuzz build",
            &["build", "--manifest-path", FUZZ_MANIFEST, "--bins"],
        ),
        Step::cargo("rsm-hal alone", &["test", "-p", "rsm-hal"]),
        Step::cargo(
            "image fmt",
            &[
                "fmt",
                "--all",
                "--manifest-path",
                "targets/kernel/Cargo.toml",
                "--",
                "--check",
            ],
        ),
        image_build_step(),
        Step::new(
            "image clippy",
            Program::Other("sh".into()),
            &["-c", IMAGE_CLIPPY_SCRIPT],
        ),
        runner_step("qemu boot", &["qemu-smoke"]),
        qemu_bench_step(true),
        Step::cargo("test", &["test", "--workspace", "--all-targets"]),
        Step::cargo("doctest", &["test", "--workspace", "--doc"]),
    ]
}

/// The fuzz crate's manifest. The crate is outside the workspace (cargo-fuzz
/// wants its own), so the test run builds and lints it explicitly: it cannot rot.
pub const FUZZ_MANIFEST: &str = "fuzz/Cargo.toml";

/// Every step of `cargo rsm demo`, in order: set-up, tools (QEMU), the image build, then
/// the two-node QEMU demo with its report (`qemu-demo`).
pub fn demo_steps() -> Vec<Step> {
    vec![
        setup_step(),
        tools_step(),
        image_build_step(),
        runner_step("demo", &["qemu-demo"]),
    ]
}

// ---------------------------------------------------------------------------
// Running steps
// ---------------------------------------------------------------------------

/// The workspace root, found from where this crate was compiled, so the
/// runner works from any current directory.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.to_path_buf(), Path::to_path_buf)
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The program exited with status 0.
    Pass,
    /// The program could not be started or exited unsuccessfully.
    Fail(String),
    /// Not run because an earlier step failed.
    NotRun,
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepResult {
    /// The step's name.
    pub name: String,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took (zero when not run).
    pub duration: Duration,
}

/// The results of a list of steps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// One result per step, in order.
    pub results: Vec<StepResult>,
}

impl Report {
    /// True when every step passed.
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.outcome == Outcome::Pass)
    }

    /// The first failed step and why it failed.
    pub fn first_failure(&self) -> Option<(&str, &str)> {
        self.results.iter().find_map(|r| match &r.outcome {
            Outcome::Fail(why) => Some((r.name.as_str(), why.as_str())),
            _ => None,
        })
    }

    /// The summary table: one row per step with its duration and result.
    pub fn summary(&self) -> String {
        let width = self
            .results
            .iter()
            .map(|r| r.name.len())
            .chain(std::iter::once("step".len()))
            .max()
            .unwrap_or(0);
        let mut out = format!("{:<width$}  {:>9}  result\n", "step", "time");
        for r in &self.results {
            let (time, result) = match r.outcome {
                Outcome::Pass => (format_duration(r.duration), "PASS"),
                Outcome::Fail(_) => (format_duration(r.duration), "FAIL"),
                Outcome::NotRun => ("-".to_string(), "not run"),
            };
            let _ = writeln!(out, "{:<width$}  {time:>9}  {result}", r.name);
        }
        let total: Duration = self.results.iter().map(|r| r.duration).sum();
        let _ = writeln!(
            out,
            "{:<width$}  {:>9}  {}",
            "total",
            format_duration(total),
            if self.passed() { "PASS" } else { "FAIL" }
        );
        out
    }
}

/// Formats a duration as `12.3s` or `4m05.6s`.
pub fn format_duration(d: Duration) -> String {
    let tenths = d.as_millis() / 100;
    let minutes = tenths / 600;
    let rest = tenths % 600;
    if minutes == 0 {
        format!("{}.{}s", rest / 10, rest % 10)
    } else {
        format!("{minutes}m{:02}.{}s", rest / 10, rest % 10)
    }
}

fn describe_status(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => format!("terminated abnormally ({status})"),
    }
}

/// Runs one step in `cwd` with stdout and stderr inherited, so its output
/// streams live. Returns the outcome and the time taken.
pub fn run_step(step: &Step, cwd: &Path) -> (Outcome, Duration) {
    let start = Instant::now();
    let status = Command::new(step.program.resolve())
        .args(&step.args)
        .current_dir(cwd)
        .status();
    let elapsed = start.elapsed();
    let outcome = match status {
        Ok(status) if status.success() => Outcome::Pass,
        Ok(status) => Outcome::Fail(format!(
            "`{}` {}",
            step.command_line(),
            describe_status(status)
        )),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            Outcome::Fail(step.program.not_found_hint())
        }
        Err(err) => Outcome::Fail(format!("could not start `{}`: {err}", step.command_line())),
    };
    (outcome, elapsed)
}

/// Runs `steps` in order from `cwd`, printing a `==> step` header line for
/// each to `log`, and stops at the first failure (later steps are reported
/// as [`Outcome::NotRun`]).
///
/// # Errors
/// Only errors writing to `log`; a failing step is reported in the [`Report`].
pub fn run_steps(steps: &[Step], cwd: &Path, log: &mut dyn Write) -> io::Result<Report> {
    let mut report = Report::default();
    let mut failed = false;
    for (index, step) in steps.iter().enumerate() {
        if failed {
            report.results.push(StepResult {
                name: step.name.clone(),
                outcome: Outcome::NotRun,
                duration: Duration::ZERO,
            });
            continue;
        }
        writeln!(log, "==> [{}/{}] {step}", index + 1, steps.len())?;
        log.flush()?;
        let (outcome, duration) = run_step(step, cwd);
        failed = outcome != Outcome::Pass;
        report.results.push(StepResult {
            name: step.name.clone(),
            outcome,
            duration,
        });
    }
    Ok(report)
}

/// Writes the numbered step list (for `cargo rsm test --list`).
///
/// # Errors
/// Errors writing to `out`.
pub fn write_step_list(steps: &[Step], out: &mut dyn Write) -> io::Result<()> {
    for (index, step) in steps.iter().enumerate() {
        writeln!(out, "{:>2}. {step}", index + 1)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

/// Finds the workspace root and checks it still holds the workspace.
fn checked_root() -> Result<PathBuf, String> {
    let root = workspace_root();
    if root.join("Cargo.toml").is_file() {
        Ok(root)
    } else {
        Err(format!(
            "the workspace root {} (recorded when rsm-runner was built) has no Cargo.toml; \
             run `cargo rsm ...` from the rsm-rs checkout so the runner is rebuilt",
            root.display()
        ))
    }
}

fn io_failure(err: &io::Error) -> ExitCode {
    eprintln!("error: could not write output: {err}");
    ExitCode::from(EXIT_FAILURE)
}

/// `cargo rsm test`: runs [`test_steps`] and prints the summary table.
pub fn cmd_test(list: bool) -> ExitCode {
    let steps = test_steps();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if list {
        return match write_step_list(&steps, &mut out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => io_failure(&err),
        };
    }
    let root = match checked_root() {
        Ok(root) => root,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let report = match run_steps(&steps, &root, &mut out) {
        Ok(report) => report,
        Err(err) => return io_failure(&err),
    };
    let printed = (|| -> io::Result<()> {
        writeln!(out)?;
        if let Some((name, why)) = report.first_failure() {
            writeln!(out, "error: step `{name}` failed: {why}")?;
            writeln!(
                out,
                "stopped at the first failure; later steps were not run."
            )?;
            writeln!(out)?;
        }
        writeln!(out, "==> summary")?;
        write!(out, "{}", report.summary())?;
        out.flush()
    })();
    if let Err(err) = printed {
        return io_failure(&err);
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

/// `cargo rsm demo`: the main job.
pub fn cmd_demo() -> ExitCode {
    let root = match checked_root() {
        Ok(root) => root,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let result = (|| -> io::Result<Report> {
        writeln!(
            out,
            "==> rsm-rs demo: two QEMU nodes, putv/getv over virtio-net"
        )?;
        run_steps(&demo_steps(), &root, &mut out)
    })();
    let report = match result {
        Ok(report) => report,
        Err(err) => return io_failure(&err),
    };
    match report.first_failure() {
        None => ExitCode::SUCCESS,
        Some((name, why)) => {
            eprintln!("error: demo step `{name}` failed: {why}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The step that runs the bench's QEMU part (`--smoke` in the test command).
pub fn qemu_bench_step(smoke: bool) -> Step {
    if smoke {
        runner_step("bench smoke", &["qemu-bench", "--smoke"])
    } else {
        runner_step("bench", &["qemu-bench"])
    }
}

/// `cargo rsm bench`: set-up, tools, image build, then the bench.
pub fn cmd_bench() -> ExitCode {
    let root = match checked_root() {
        Ok(root) => root,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let steps = vec![
        setup_step(),
        tools_step(),
        image_build_step(),
        qemu_bench_step(false),
    ];
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match run_steps(&steps, &root, &mut out) {
        Ok(r) if r.passed() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(EXIT_FAILURE),
        Err(e) => io_failure(&e),
    }
}

/// `cargo rsm qemu-bench [--smoke]`: run the bench, print the table, write
/// `target/runs/bench[-smoke]/bench.json`. Fails when a node fails or a figure is missing;
/// a missed goal is reported, not a failure (the figures are the result).
pub fn cmd_qemu_bench(smoke: bool) -> ExitCode {
    let image = image_path();
    let dir = demo::run_dir(if smoke { "bench-smoke" } else { "bench" });
    let opts = if smoke {
        bench::Opts::SMOKE
    } else {
        bench::Opts::FULL
    };
    println!(
        "bench of {} ({}; run directory {})",
        image.display(),
        if smoke { "smoke" } else { "full" },
        dir.display()
    );
    let mut show = |l: &str| println!("{l}");
    match bench::run(&image, &dir, opts, &mut show) {
        Ok(rows) => {
            print!("\n{}", bench::table(&rows));
            println!("(JSON: {})", dir.join("bench.json").display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `cargo rsm qemu-demo`: boot the demo's nodes, show their logs, print the report; fails
/// when anything is wrong ([`demo::problems`]).
pub fn cmd_qemu_demo(rounds: u32, dir: Option<PathBuf>) -> ExitCode {
    let image = image_path();
    let dir = dir.unwrap_or_else(|| demo::run_dir("demo"));
    println!(
        "booting 2 QEMU nodes from {} (run directory {})",
        image.display(),
        dir.display()
    );
    let mut show = |l: &str| println!("{l}");
    match demo::run(&image, &dir, rounds, &mut show) {
        Ok(run) => {
            let _ = std::fs::write(dir.join("report.json"), demo::json(&run));
            print!("\n{}", demo::report(&run));
            println!(
                "(run directory {}: capture.pcap, node-N.log decoded, node-N.serial, report.json)",
                dir.display()
            );
            let problems = demo::problems(&run, rounds);
            if problems.is_empty() {
                println!(
                    "demo passed: {} bytes verified each way",
                    u64::from(rounds) * demo::ROUND_BYTES
                );
                ExitCode::SUCCESS
            } else {
                for p in problems {
                    eprintln!("error: {p}");
                }
                ExitCode::from(EXIT_FAILURE)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Parses the arguments (without the program name) and runs the command.
pub fn main_with_args<I, S>(args: I) -> ExitCode
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    match parse_args(args) {
        Ok(Cli::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Cli::Test { list }) => cmd_test(list),
        Ok(Cli::Demo) => cmd_demo(),
        Ok(Cli::QemuDemo { rounds, dir }) => cmd_qemu_demo(rounds, dir),
        Ok(Cli::Bench) => cmd_bench(),
        Ok(Cli::QemuBench { smoke }) => cmd_qemu_bench(smoke),
        Ok(Cli::QemuSmoke) => {
            let mut out = std::io::stdout();
            match qemu::smoke(&image_path(), Path::new(IMAGE_TARGET_DIR), &mut out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
        Ok(Cli::QemuConformance) => cmd_qemu_conformance(),
        Ok(Cli::Decode { file }) => {
            let mut out = String::new();
            match decode::decode(&file, &mut out) {
                Ok(_) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
        Err(err) => {
            eprintln!("error: {err}\n\n{USAGE}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(steps: &[Step], name: &str) -> usize {
        steps
            .iter()
            .position(|s| s.name == name)
            .unwrap_or_else(|| panic!("no step named {name}"))
    }

    #[test]
    fn parses_commands() {
        assert_eq!(parse_args(Vec::<String>::new()), Ok(Cli::Help));
        for help in ["help", "-h", "--help"] {
            assert_eq!(parse_args([help]), Ok(Cli::Help));
        }
        assert_eq!(parse_args(["demo"]), Ok(Cli::Demo));
        assert_eq!(parse_args(["test"]), Ok(Cli::Test { list: false }));
        assert_eq!(parse_args(["test", "--list"]), Ok(Cli::Test { list: true }));
        assert_eq!(parse_args(["test", "--help"]), Ok(Cli::Help));
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse_args(["bogus"]).is_err());
        assert!(parse_args(["test", "--skip-clippy"]).is_err());
        assert!(parse_args(["test", "--list", "extra"]).is_err());
        assert!(parse_args(["demo", "x"]).is_err());
        assert!(parse_args(["--list"]).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn rejects_non_utf8_argument() {
        use std::os::unix::ffi::OsStringExt;
        let arg = OsString::from_vec(vec![0x66, 0xff, 0x6f]);
        assert!(parse_args([arg]).is_err());
    }

    #[test]
    fn test_steps_are_in_order() {
        let steps = test_steps();
        assert_eq!(steps[0], setup_step());
        let order = [
            "setup",
            "tools",
            "fmt",
            "clippy",
            "no_std build",
            "no_std build (defmt)",
            "no_std clippy",
            "fuzz clippy",
            "fuzz build",
            "rsm-hal alone",
            "image fmt",
            "image build",
            "image clippy",
            "qemu boot",
            "bench smoke",
            "test",
            "doctest",
        ];
        let positions: Vec<usize> = order.iter().map(|n| position(&steps, n)).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        assert_eq!(steps.len(), order.len());
    }

    #[test]
    fn test_steps_have_the_required_commands() {
        let lines: Vec<String> = test_steps().iter().map(Step::command_line).collect();
        let expected = [
            "rustup target add x86_64-unknown-none",
            &format!("sh -c {TOOLS_SCRIPT}"),
            "cargo fmt --all -- --check",
            "cargo clippy --workspace --all-targets -- -D warnings",
            "cargo build -p rsm-core -p rsm-conformance --target x86_64-unknown-none",
            "cargo build -p rsm-core --target x86_64-unknown-none --features defmt",
            "cargo clippy -p rsm-core -p rsm-conformance --target x86_64-unknown-none -- -D warnings",
            "cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings",
            "cargo build --manifest-path fuzz/Cargo.toml --bins",
            "cargo test -p rsm-hal",
            "cargo fmt --all --manifest-path targets/kernel/Cargo.toml -- --check",
            &format!("sh -c {IMAGE_BUILD_SCRIPT}"),
            &format!("sh -c {IMAGE_CLIPPY_SCRIPT}"),
            "cargo run -q --release -p rsm-runner -- qemu-smoke",
            "cargo run -q --release -p rsm-runner -- qemu-bench --smoke",
            "cargo test --workspace --all-targets",
            "cargo test --workspace --doc",
        ];
        assert_eq!(lines, expected);
    }

    #[test]
    fn demo_sets_up_builds_the_image_then_boots_it() {
        let steps = demo_steps();
        assert_eq!(steps[0], setup_step());
        assert_eq!(steps[1], tools_step());
        assert_eq!(
            steps[2].command_line(),
            format!("sh -c {IMAGE_BUILD_SCRIPT}")
        );
        assert_eq!(
            steps[3].command_line(),
            "cargo run -q --release -p rsm-runner -- qemu-demo"
        );
        assert_eq!(steps.len(), 4);
    }

    #[test]
    fn step_list_is_numbered() {
        let mut out = Vec::new();
        write_step_list(&test_steps(), &mut out).expect("write to Vec");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with(" 1. setup: rustup target add x86_64-unknown-none\n"));
        assert_eq!(text.lines().count(), test_steps().len());
    }

    #[test]
    fn workspace_root_holds_the_workspace() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml"))
            .expect("workspace Cargo.toml");
        assert!(manifest.contains("[workspace]"));
        assert!(manifest.contains("\"runner\""));
    }

    #[test]
    fn formats_durations() {
        assert_eq!(format_duration(Duration::from_millis(0)), "0.0s");
        assert_eq!(format_duration(Duration::from_millis(12_345)), "12.3s");
        assert_eq!(format_duration(Duration::from_millis(245_600)), "4m05.6s");
    }

    #[test]
    fn missing_program_fails_with_a_clear_message() {
        let step = Step::new(
            "missing",
            Program::Other("rsm-runner-no-such-program".into()),
            &[],
        );
        let (outcome, _) = run_step(&step, &workspace_root());
        assert_eq!(
            outcome,
            Outcome::Fail("`rsm-runner-no-such-program` was not found on PATH.".into())
        );
        assert!(Program::Rustup.not_found_hint().contains("rustup"));
    }

    #[cfg(unix)]
    #[test]
    fn stops_at_the_first_failure() {
        let steps = vec![
            Step::new("ok", Program::Other("true".into()), &[]),
            Step::new("bad", Program::Other("false".into()), &[]),
            Step::new("later", Program::Other("true".into()), &[]),
        ];
        let mut log = Vec::new();
        let report = run_steps(&steps, &workspace_root(), &mut log).expect("run");
        let outcomes: Vec<&Outcome> = report.results.iter().map(|r| &r.outcome).collect();
        assert_eq!(outcomes[0], &Outcome::Pass);
        assert!(matches!(outcomes[1], Outcome::Fail(why) if why.contains("status 1")));
        assert_eq!(outcomes[2], &Outcome::NotRun);
        assert!(!report.passed());
        assert_eq!(report.first_failure().map(|(n, _)| n), Some("bad"));

        let log = String::from_utf8(log).expect("utf-8");
        assert_eq!(log, "==> [1/3] ok: true\n==> [2/3] bad: false\n");

        let summary = report.summary();
        assert!(summary.contains("PASS"));
        assert!(summary.contains("FAIL"));
        assert!(summary.contains("not run"));
        assert_eq!(summary.lines().count(), 1 + steps.len() + 1);
    }

    #[cfg(unix)]
    #[test]
    fn all_passing_steps_pass() {
        let steps = vec![Step::new("ok", Program::Other("true".into()), &[])];
        let report = run_steps(&steps, &workspace_root(), &mut io::sink()).expect("run");
        assert!(report.passed());
        assert_eq!(report.first_failure(), None);
    }
}
