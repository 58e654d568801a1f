use clap::{Parser, Subcommand, ValueEnum};
use matdiff::{err, err_raw, out};
use matdiff::{Check, Error, Layout, Options};
use std::io::{IsTerminal, Read};
use std::process::ExitCode;

/// Symbolic matrix calculus: derive, simplify and numerically check gradients.
#[derive(Parser)]
#[command(name = "matdiff", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The gradient of a scalar target, or the backprop of an upstream G through a non-scalar one.
    Grad(GradArgs),
    /// The full-form derivative ∂T/∂X of a vector or matrix target, as a matrix over vec.
    Jacobian(FullArgs),
    /// The Hessian of a scalar target (the Jacobian of its gradient); `--wrt x,y` the mixed block.
    Hessian(FullArgs),
    /// A Hessian-vector product H·v (v a declared variable of x's shape), without forming H.
    Hvp(HvpArgs),
    /// The derivative three ways (per example, compact chain rule, full Jacobian), every step checked.
    Explain(ExplainArgs),
    /// The interactive session (also what `matdiff` alone starts); piped input runs as a script.
    Repl {
        /// Load a script, or a numpy forward pass from a `.py` file, first (as `:load FILE`).
        #[arg(short = 'f', long = "file")]
        file: Option<String>,
    },
}

/// What every derivation command reads: the script and the variable.
#[derive(clap::Args, Clone)]
struct Input {
    /// The script: declarations and expressions separated by `;` or newlines.
    script: Option<String>,
    /// Read the script from a file (`-` for standard input).
    #[arg(short = 'f', long = "file", conflicts_with = "script")]
    file: Option<String>,
    /// The variable to differentiate with respect to: a name, a comma-separated list, or `all`.
    #[arg(long)]
    wrt: String,
    /// Read the script as numpy code (the default for a `.py` file).
    #[arg(long)]
    numpy: bool,
    /// In numpy code, the forward function to differentiate (default: the last one in the file).
    #[arg(long = "fn", value_name = "NAME")]
    function_name: Option<String>,
}

/// How every derivation command checks its result.
#[derive(clap::Args, Clone)]
struct CheckArgs {
    /// Skip the numeric check (the output then says "unchecked").
    #[arg(long)]
    no_check: bool,
    /// Seed for the random instances of the numeric check.
    #[arg(long)]
    seed: Option<u64>,
    /// Negate the formula before checking it (for testing the failed-check path).
    #[arg(long, hide = true)]
    plant_fault: bool,
}

#[derive(clap::Args)]
struct GradArgs {
    #[command(flatten)]
    input: Input,
    #[arg(long, value_enum, default_value_t = LayoutArg::Denominator)]
    layout: LayoutArg,
    #[arg(long, value_enum, default_value_t = Emit::Text)]
    emit: Emit,
    /// With `--emit latex`: a complete document instead of an `align*` body.
    #[arg(long)]
    standalone: bool,
    /// With `--emit numpy`: a complete Python function with shape asserts instead of one expression.
    #[arg(long)]
    function: bool,
    /// Also show the derivation step by step (as `explain` does; with `--emit latex`, its notes).
    #[arg(long)]
    steps: bool,
    #[command(flatten)]
    check: CheckArgs,
    /// Also report how simplification ended.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(clap::Args)]
struct FullArgs {
    #[command(flatten)]
    input: Input,
    #[arg(long, value_enum, default_value_t = Emit::Text)]
    emit: Emit,
    /// With `--emit latex`: a complete document instead of a fragment.
    #[arg(long)]
    standalone: bool,
    /// With `--emit numpy`: a complete Python function with shape asserts instead of one expression.
    #[arg(long)]
    function: bool,
    #[command(flatten)]
    check: CheckArgs,
}

#[derive(clap::Args)]
struct HvpArgs {
    #[command(flatten)]
    input: Input,
    /// The direction v: a declared variable of the same shape as `--wrt`.
    #[arg(long)]
    dir: String,
    #[arg(long, value_enum, default_value_t = HvpEmit::Text)]
    emit: HvpEmit,
    /// With `--emit latex`: the notes as a complete document instead of an `align*` body.
    #[arg(long)]
    standalone: bool,
    /// With `--emit numpy`: a complete Python function with shape asserts instead of one expression.
    #[arg(long)]
    function: bool,
    #[command(flatten)]
    check: CheckArgs,
}

#[derive(clap::Args)]
struct ExplainArgs {
    #[command(flatten)]
    input: Input,
    #[arg(long, value_enum, default_value_t = LayoutArg::Denominator)]
    layout: LayoutArg,
    #[arg(long, value_enum, default_value_t = NotesEmit::Text)]
    emit: NotesEmit,
    /// With `--emit latex`: the notes as a complete document instead of a fragment.
    #[arg(long)]
    standalone: bool,
    #[command(flatten)]
    check: CheckArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    Denominator,
    Numerator,
}

/// What `grad`, `jacobian` and `hessian` can write.
#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Emit {
    Text,
    Json,
    Numpy,
    Latex,
    Markdown,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum HvpEmit {
    Text,
    Json,
    Numpy,
    Latex,
    Markdown,
}

/// `explain` writes notes, not code: numpy or JSON of its result is `grad`'s.
#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum NotesEmit {
    Text,
    Latex,
    Markdown,
}

const EXIT_INPUT: u8 = 2;
const EXIT_CHECK: u8 = 3;

fn main() -> ExitCode {
    // Deep expressions recurse through the checker; a large stack keeps them from overflowing.
    let worker = std::thread::Builder::new().stack_size(256 << 20).spawn(run);
    match worker.map(|h| h.join()) {
        Ok(Ok(code)) => code,
        _ => {
            err!("error: matdiff stopped unexpectedly");
            ExitCode::from(EXIT_INPUT)
        }
    }
}

fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Grad(args)) => grad(args),
        Some(Command::Jacobian(args)) => full_form(args, matdiff::fullform::FullKind::Jacobian),
        Some(Command::Hessian(args)) => full_form(args, matdiff::fullform::FullKind::Hessian),
        Some(Command::Hvp(args)) => hvp(args),
        Some(Command::Explain(args)) => explain(args),
        Some(Command::Repl { file }) => ExitCode::from(matdiff::repl::run(file.as_deref()).clamp(0, 255) as u8),
        None => ExitCode::from(matdiff::repl::run(None).clamp(0, 255) as u8),
    }
}

fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

fn read_script(args: &Input) -> Result<(String, String), String> {
    match (&args.script, &args.file) {
        (Some(s), None) => Ok(("<script>".into(), s.clone())),
        (None, Some(path)) if path == "-" => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| format!("error: cannot read standard input: {e}"))?;
            String::from_utf8(buf)
                .map(|s| ("<stdin>".into(), s))
                .map_err(|_| "error: standard input is not valid UTF-8".into())
        }
        (None, Some(path)) => {
            let bytes = std::fs::read(path).map_err(|e| format!("error: cannot read `{path}`: {e}"))?;
            String::from_utf8(bytes)
                .map(|s| (path.clone(), s))
                .map_err(|_| format!("error: `{path}` is not valid UTF-8"))
        }
        _ => Err("error: give a script, or a file with -f FILE".into()),
    }
}

/// The script (with the name errors show for it) and the options the arguments ask for.
fn prepare(input: &Input, layout: LayoutArg, check: &CheckArgs) -> Result<(String, String, Options), ExitCode> {
    let (name, script) = read_script(input).map_err(|message| {
        err!("{message}");
        ExitCode::from(EXIT_INPUT)
    })?;
    let mut options = Options {
        layout: match layout {
            LayoutArg::Denominator => Layout::Denominator,
            LayoutArg::Numerator => Layout::Numerator,
        },
        no_check: check.no_check,
        plant_fault: check.plant_fault,
        ..Options::default()
    };
    if let Some(seed) = check.seed {
        options.check.seed = seed;
    }
    Ok((name, script, options))
}

/// A script read in its language: matdiff's own, or numpy code (a forward function).
enum Source {
    Script(Box<matdiff::lower::Checked>),
    Numpy(Box<matdiff::numpy_dialect::Program>),
}

impl Source {
    fn read(args: &Input, name: &str, script: &str) -> Result<Source, Error> {
        if args.numpy || matdiff::numpy_dialect::is_numpy_file(name) {
            let program = matdiff::numpy_dialect::read(script, args.function_name.as_deref())?;
            return Ok(Source::Numpy(Box::new(program)));
        }
        if let Some(f) = &args.function_name {
            return Err(Error::new(
                matdiff::ErrorKind::Input,
                "`--fn` selects a function in numpy code; add `--numpy` or use a `.py` file",
                None,
            )
            .in_argument("--fn", f));
        }
        Ok(Source::Script(Box::new(matdiff::check_script(script)?)))
    }

    fn checked(&self) -> &matdiff::lower::Checked {
        match self {
            Source::Script(c) => c,
            Source::Numpy(p) => &p.checked,
        }
    }

    /// `--wrt`: one name, a comma-separated list, or `all`.
    fn wrt(&self, wrt: &str) -> Vec<String> {
        match self {
            Source::Script(c) => matdiff::numpy_dialect::resolve_wrt_list(wrt, &c.variables),
            Source::Numpy(p) => p.resolve_wrt(wrt),
        }
    }
}

fn grad(args: GradArgs) -> ExitCode {
    if args.steps {
        let emit = match args.emit {
            Emit::Text => NotesEmit::Text,
            Emit::Latex => NotesEmit::Latex,
            Emit::Markdown => NotesEmit::Markdown,
            Emit::Json | Emit::Numpy => {
                err!("error: `--steps` shows the derivation as text, latex or markdown, not as json or numpy");
                return ExitCode::from(EXIT_INPUT);
            }
        };
        return explain(ExplainArgs {
            input: args.input,
            layout: args.layout,
            emit,
            standalone: args.standalone,
            check: args.check,
        });
    }
    let (name, script, options) = match prepare(&args.input, args.layout, &args.check) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let source = match Source::read(&args.input, &name, &script) {
        Ok(s) => s,
        Err(e) => return report(&e, &name, &script),
    };
    let wrt_arg = &args.input.wrt;
    let wrt = source.wrt(wrt_arg);
    // Every gradient in one reverse pass.
    let wrt: Vec<&str> = wrt.iter().map(String::as_str).collect();
    let derivations = matdiff::grad_all(source.checked(), &wrt, &options).map_err(|e| e.in_argument("--wrt", wrt_arg));
    let derivations = match derivations {
        Ok(d) if !d.is_empty() => d,
        Ok(_) => {
            err!("error: `--wrt` names no variable");
            return ExitCode::from(EXIT_INPUT);
        }
        Err(e) => return report(&e, &name, &script),
    };
    if args.verbose {
        for d in &derivations {
            let s = &d.simplify;
            let end = s.limit_hit.as_deref().map_or("saturated".to_string(), |l| {
                format!("stopped at the {l}; the result is correct but may not be the simplest")
            });
            err!(
                "simplification of ∂/∂{}: {} iterations, {} e-nodes, {end}",
                d.wrt,
                s.iterations,
                s.nodes
            );
        }
    }
    let rendered = render_gradients(&args, &source, &derivations);
    let passed = derivations
        .iter()
        .all(|d| matches!(d.check, Check::Passed { .. } | Check::Skipped));
    if passed {
        out!("{rendered}");
        ExitCode::SUCCESS
    } else {
        err!("{rendered}");
        if args.emit != Emit::Text {
            for d in &derivations {
                err!("∂/∂{}: {}", d.wrt, d.check_text());
            }
        }
        ExitCode::from(EXIT_CHECK)
    }
}

fn render_gradients(args: &GradArgs, source: &Source, derivations: &[matdiff::Derivation]) -> String {
    let numpy_expression = |d: &matdiff::Derivation| match source {
        Source::Numpy(p) => p.numpy_expression(d),
        Source::Script(_) => d.numpy(),
    };
    match (args.emit, derivations) {
        (Emit::Text, ds) => matdiff::derivations_text(ds),
        (Emit::Json, [d]) => serde_json::to_string_pretty(&d.json()).unwrap_or_default(),
        (Emit::Json, ds) => {
            serde_json::to_string_pretty(&ds.iter().map(|d| d.json()).collect::<Vec<_>>()).unwrap_or_default()
        }
        (Emit::Numpy, ds) if args.function => match source {
            Source::Numpy(p) => p.python_function(ds),
            Source::Script(_) => ds.iter().map(|d| d.numpy_function()).collect::<Vec<_>>().join("\n\n"),
        },
        (Emit::Numpy, [d]) => numpy_expression(d),
        (Emit::Numpy, ds) => ds
            .iter()
            .map(|d| format!("d{} = {}", d.wrt, numpy_expression(d)))
            .collect::<Vec<_>>()
            .join("\n"),
        (Emit::Latex, ds) if args.standalone => matdiff::render::notes::gradients(ds).latex(true),
        (Emit::Latex, ds) => format!("\\begin{{align*}}\n{}\n\\end{{align*}}", matdiff::derivations_latex(ds)),
        (Emit::Markdown, ds) => matdiff::render::notes::gradients(ds).markdown(),
    }
}

/// `prepare` for `jacobian`, `hessian` and `hvp`, refusing `--function` without `--emit numpy`.
fn prepare_second_order(
    input: &Input,
    check: &CheckArgs,
    function_without_numpy: bool,
) -> Result<(String, String, Options), ExitCode> {
    if function_without_numpy {
        err!("error: `--function` writes a Python function; add `--emit numpy`");
        return Err(ExitCode::from(EXIT_INPUT));
    }
    prepare(input, LayoutArg::Denominator, check)
}

fn full_form(args: FullArgs, kind: matdiff::fullform::FullKind) -> ExitCode {
    let (name, script, options) =
        match prepare_second_order(&args.input, &args.check, args.function && args.emit != Emit::Numpy) {
            Ok(p) => p,
            Err(code) => return code,
        };
    let wrt = &args.input.wrt;
    let result = Source::read(&args.input, &name, &script).and_then(|source| match kind {
        matdiff::fullform::FullKind::Jacobian => {
            matdiff::fullform::jacobian(source.checked(), wrt, &options).map(|f| vec![f])
        }
        matdiff::fullform::FullKind::Hessian => match source.wrt(wrt).as_slice() {
            // `--wrt x,y`: the mixed block, the Jacobian in y of the gradient in x.
            [x, y] if wrt.contains(',') => {
                matdiff::fullform::hessian_mixed(source.checked(), x, y, &options).map(|f| vec![f])
            }
            // `--wrt all`: every block, row by row (the gradient in each variable).
            all @ [_, _, ..] if wrt.trim() == "all" => all
                .iter()
                .flat_map(|x| all.iter().map(move |y| (x, y)))
                .map(|(x, y)| matdiff::fullform::hessian_mixed(source.checked(), x, y, &options))
                .collect(),
            [_, _, ..] => Err(matdiff::Error::new(
                matdiff::ErrorKind::Input,
                "a Hessian takes one variable, two (`--wrt x,y`) for the mixed block ∂²f/∂x∂y, or `all`",
                None,
            )
            .in_argument("--wrt", wrt)),
            // `--wrt all` with one variable is that variable's Hessian.
            [x] => matdiff::fullform::hessian(source.checked(), x, &options).map(|f| vec![f]),
            _ => matdiff::fullform::hessian(source.checked(), wrt, &options).map(|f| vec![f]),
        },
    });
    let forms = match result {
        Ok(f) => f,
        Err(e) => return report(&e, &name, &script),
    };
    let rendered = match (args.emit, forms.as_slice()) {
        (Emit::Numpy, [form]) if args.function => form.numpy_function(),
        (Emit::Numpy, [form]) => form.numpy(),
        (Emit::Latex, [form]) => matdiff::render::notes::full_form(form).latex(args.standalone),
        (Emit::Markdown, [form]) => matdiff::render::notes::full_form(form).markdown(),
        (Emit::Json, [form]) => full_json(form).to_string(),
        (Emit::Text, forms) => forms.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n\n"),
        (Emit::Json, forms) => serde_json::Value::Array(forms.iter().map(full_json).collect()).to_string(),
        (Emit::Numpy, forms) if !args.function => block_numpy(forms),
        _ => {
            err!("error: the whole Hessian (`--wrt all`) is shown as text, json or numpy (one expression); ask for a block with `--wrt x,y`");
            return ExitCode::from(EXIT_INPUT);
        }
    };
    let passed = forms.iter().all(|form| {
        matches!(form.check, Check::Passed { .. } | Check::Skipped)
            && form.contraction.as_ref().is_none_or(|(_, ok)| *ok)
    });
    if passed {
        out!("{rendered}");
        ExitCode::SUCCESS
    } else {
        err!("{rendered}");
        ExitCode::from(EXIT_CHECK)
    }
}

fn full_json(form: &matdiff::fullform::FullForm) -> serde_json::Value {
    serde_json::json!({
        "rows": form.gradient_variable(),
        "wrt": form.wrt,
        "matrix": form.matrix_text(),
        "latex": form.matrix_latex(),
        "tensor_shape": form.tensor_shape().iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "numpy": form.numpy(),
        "derived_zero": form.derived_zero,
        "zero_reason": form.zero_reason,
        "index_form": form.index_form,
        "nonzeros": form.nonzeros.as_ref().map(|d| d.to_string()),
        "check": form.check_text(),
    })
}

/// The whole Hessian as one `np.block`: block (i, j) is ∂vec(∇ᵢf)/∂vec(xⱼ), so rows and columns
/// both follow the variables' ravels concatenated in order. `forms` is square, row by row.
fn block_numpy(forms: &[matdiff::fullform::FullForm]) -> String {
    let n = (forms.len() as f64).sqrt().round() as usize;
    let rows: Vec<String> = forms
        .chunks(n.max(1))
        .map(|row| format!("[{}]", row.iter().map(|f| f.numpy()).collect::<Vec<_>>().join(", ")))
        .collect();
    format!("np.block([{}])", rows.join(", "))
}

fn hvp(args: HvpArgs) -> ExitCode {
    let (name, script, options) =
        match prepare_second_order(&args.input, &args.check, args.function && args.emit != HvpEmit::Numpy) {
            Ok(p) => p,
            Err(code) => return code,
        };
    let result = Source::read(&args.input, &name, &script)
        .and_then(|source| matdiff::hvp::hvp(source.checked(), &args.input.wrt, &args.dir, &options));
    let product = match result {
        Ok(p) => p,
        Err(e) => return report(&e, &name, &script),
    };
    let rendered = match args.emit {
        HvpEmit::Text => product.to_string(),
        HvpEmit::Json => serde_json::to_string_pretty(&product.json()).unwrap_or_default(),
        HvpEmit::Numpy if args.function => product.numpy_function(),
        HvpEmit::Numpy => product.numpy(),
        HvpEmit::Latex if args.standalone => matdiff::render::notes::hvp(&product).latex(true),
        HvpEmit::Latex => format!("\\begin{{align*}}\n{}\n\\end{{align*}}", product.latex()),
        HvpEmit::Markdown => matdiff::render::notes::hvp(&product).markdown(),
    };
    if matches!(product.check, Check::Passed { .. } | Check::Skipped) {
        out!("{rendered}");
        ExitCode::SUCCESS
    } else {
        err!("{rendered}");
        if args.emit != HvpEmit::Text {
            err!("{}", product.check_text());
        }
        ExitCode::from(EXIT_CHECK)
    }
}

fn explain(args: ExplainArgs) -> ExitCode {
    let (name, script, options) = match prepare(&args.input, args.layout, &args.check) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let result = Source::read(&args.input, &name, &script)
        .and_then(|source| matdiff::explain::explain(source.checked(), &args.input.wrt, &options));
    let explanation = match result {
        Ok(x) => x,
        Err(e) => return report(&e, &name, &script),
    };
    let rendered = match args.emit {
        NotesEmit::Latex => explanation.notes().latex(args.standalone),
        NotesEmit::Markdown => explanation.notes().markdown(),
        NotesEmit::Text => explanation.to_string(),
    };
    if explanation.all_checked() || args.check.no_check {
        out!("{rendered}");
        ExitCode::SUCCESS
    } else {
        err!("{rendered}");
        ExitCode::from(EXIT_CHECK)
    }
}

fn report(e: &Error, name: &str, script: &str) -> ExitCode {
    err_raw!("{}", e.render(name, script, color()));
    ExitCode::from(EXIT_INPUT)
}
