//! The `postgate` command line: one file per subcommand, exit codes that tell
//! outcomes and failures apart.

mod audit_verify;
mod eval;
mod gate_build;
mod gate_inspect;
mod gate_new;
mod gate_test;
mod gate_verify;
mod policy_check;
mod policy_diff;
mod policy_lock;
mod preview;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::engine::{Runtime, RuntimeOptions};

const EXIT_CODES: &str = "\
Exit codes:
  0   success; for `eval`, the chain allows
  1   `eval`: the chain denies; `gate test`: a case failed; `preview`: the draft breaks a rule;
      `audit verify`: a decision chain is broken; `policy diff`: an outcome would change;
      `gate verify`: the embedded source does not build the same component
  3   `eval`: the chain is pending (waiting on a human)
  64  invalid input: arguments, request, policy or gate
  70  internal error";

/// How a command ended, as the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success, or an allow.
    Success = 0,
    /// A deny, or a failed gate test.
    Deny = 1,
    /// A pending decision.
    Pending = 3,
    /// Bad arguments, request, policy or gate.
    Invalid = 64,
    /// Something broke inside postgate.
    Internal = 70,
}

/// A command's failure: whose fault it is decides the exit code.
#[derive(Debug)]
pub enum CliError {
    /// The caller's input is wrong.
    Invalid(anyhow::Error),
    /// postgate itself failed.
    Internal(anyhow::Error),
}

/// Marks an error as the caller's fault.
fn invalid(err: impl Into<anyhow::Error>) -> CliError {
    CliError::Invalid(err.into())
}

/// Marks an error as postgate's fault.
fn internal(err: impl Into<anyhow::Error>) -> CliError {
    CliError::Internal(err.into())
}

#[derive(Parser)]
#[command(name = "postgate", version, about = "Safety gates as sandboxed WebAssembly components", after_help = EXIT_CODES)]
struct Cli {
    /// Where postgate keeps its state (the precompiled-gate cache, and later the database).
    #[arg(long, env = "POSTGATE_DATA_DIR", default_value = ".postgate", global = true)]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API on the active policy.
    Serve(serve::Args),
    /// Evaluate one request through a policy and print the decision as JSON.
    #[command(after_help = EXIT_CODES)]
    Eval(eval::Args),
    /// Build, test, inspect and scaffold gates.
    #[command(subcommand)]
    Gate(GateCommand),
    /// Check, lock and diff policy manifests.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Verify the decision log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Render a draft for one platform: payload, count, limit and broken rules.
    #[command(after_help = EXIT_CODES)]
    Preview(preview::Args),
}

#[derive(Subcommand)]
enum GateCommand {
    /// Build gates from source into WebAssembly components and print their digests.
    Build(gate_build::Args),
    /// Run each gate against the fixture cases beside its source.
    Test(gate_test::Args),
    /// Show a component's exports, imports, digest, size and self-description.
    Inspect(gate_inspect::Args),
    /// Scaffold a new gate crate on the gate SDK.
    New(gate_new::Args),
    /// Rebuild a gate from the source embedded in it and check its digest.
    #[command(after_help = EXIT_CODES)]
    Verify(gate_verify::Args),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk every workspace's decision chain and report the first broken link of each.
    Verify(audit_verify::Args),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy: parse, digests, compile, gate contract, config.
    Check(policy_check::Args),
    /// Write each gate's current component digest into the policy.
    Lock(policy_lock::Args),
    /// Replay recorded decisions against a candidate policy: which outcomes would change.
    #[command(after_help = EXIT_CODES)]
    Diff(policy_diff::Args),
}

/// Shared by the subcommands: where state lives.
pub struct Context {
    data_dir: PathBuf,
}

impl Context {
    /// A gate runtime caching precompiled gates under the data directory.
    fn runtime(&self) -> Result<Runtime, CliError> {
        Runtime::new(&RuntimeOptions {
            cache_dir: Some(self.data_dir.join("cache")),
        })
        .map_err(internal)
    }
}

/// Parses the command line, runs the command and returns its exit code.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            let code = if err.use_stderr() { Exit::Invalid } else { Exit::Success };
            return ExitCode::from(code as u8);
        }
    };
    let context = Context { data_dir: cli.data_dir };
    let result = match cli.command {
        Command::Serve(args) => serve::run(args, &context),
        Command::Eval(args) => eval::run(args, &context),
        Command::Gate(GateCommand::Build(args)) => gate_build::run(args),
        Command::Gate(GateCommand::Test(args)) => gate_test::run(args, &context),
        Command::Gate(GateCommand::Inspect(args)) => gate_inspect::run(args, &context),
        Command::Gate(GateCommand::New(args)) => gate_new::run(args),
        Command::Gate(GateCommand::Verify(args)) => gate_verify::run(args, &context),
        Command::Policy(PolicyCommand::Check(args)) => policy_check::run(args, &context),
        Command::Policy(PolicyCommand::Lock(args)) => policy_lock::run(args),
        Command::Policy(PolicyCommand::Diff(args)) => policy_diff::run(args, &context),
        Command::Preview(args) => preview::run(args),
        Command::Audit(AuditCommand::Verify(args)) => audit_verify::run(args, &context),
    };
    let code = match result {
        Ok(exit) => exit,
        Err(CliError::Invalid(err)) => {
            eprintln!("error: {err:#}");
            Exit::Invalid
        }
        Err(CliError::Internal(err)) => {
            eprintln!("internal error: {err:#}");
            Exit::Internal
        }
    };
    ExitCode::from(code as u8)
}
