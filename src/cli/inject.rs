//! `certweave inject`: the webhook's mutations on a YAML stream.

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::Args;

use certweave::inject::{inject_stream, InjectError, InjectOptions};

use super::MutationArgs;

#[derive(Args)]
pub struct InjectArgs {
    /// YAML file to read, or - for standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE|-")]
    file: String,
    /// Namespace assumed for documents without metadata.namespace (used for
    /// the default Pod DNS names <svc>.<ns>.svc).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    #[command(flatten)]
    mutation: MutationArgs,
}

pub fn run(args: InjectArgs) -> ExitCode {
    let input = if args.file == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map(|_| s)
    } else {
        std::fs::read_to_string(&args.file)
    };
    let input = match input {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.file);
            return ExitCode::from(2);
        }
    };
    let options = InjectOptions {
        mutation: args.mutation.into_config(),
        default_namespace: args.namespace,
    };
    match inject_stream(&input, &options) {
        Ok(injected) => {
            for warning in &injected.warnings {
                eprintln!("warning: {warning}");
            }
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout
                .write_all(injected.output.as_bytes())
                .and_then(|_| stdout.flush())
            {
                eprintln!("error: cannot write output: {e}");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e @ (InjectError::Yaml { .. } | InjectError::Invalid { .. })) => {
            eprintln!("error: {}: {e}", args.file);
            ExitCode::from(2)
        }
    }
}
