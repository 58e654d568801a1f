"""Shared by bench/compare_sympy.py and bench/scaling.py: the venv, the Rust timing
binary, the machine description. Standard library only (it runs before the venv exists)."""

import json
import os
import platform
import shutil
import subprocess
import sys
import venv

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
VENV = os.path.join(BENCH, ".venv")
PACKAGES = ["sympy", "numpy", "matplotlib"]


def venv_python():
    return os.path.join(VENV, "bin", "python")


def ensure_venv(script):
    """Re-executes `script` inside bench/.venv, creating it (sympy, numpy, matplotlib) if needed."""
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV) or os.environ.get("MATDIFF_BENCH_VENV"):
        return
    os.environ["MATDIFF_BENCH_VENV"] = "1"  # re-executed once at most
    if not os.path.exists(venv_python()):
        print(f"creating {VENV} ({', '.join(PACKAGES)})", file=sys.stderr)
        venv.create(VENV, with_pip=True)
        extra = [] if sys.version_info >= (3, 11) else ["tomli"]
        subprocess.run(
            [venv_python(), "-m", "pip", "install", "--quiet", *PACKAGES, *extra], check=True
        )
    os.execv(venv_python(), [venv_python(), os.path.abspath(script), *sys.argv[1:]])


def load_toml(path):
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    with open(path, "rb") as f:
        return tomllib.load(f)


def timings_executable():
    """Builds the `timings` bench target (release profile) and returns its path, so each
    run can be bounded by a timeout without cargo in between."""
    out = subprocess.run(
        ["cargo", "bench", "--bench", "timings", "--no-run", "--message-format=json"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    for line in out.splitlines():
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if (
            msg.get("reason") == "compiler-artifact"
            and msg.get("target", {}).get("name") == "timings"
            and msg.get("executable")
        ):
            return msg["executable"]
    sys.exit("could not find the timings executable in cargo's output")


def _memory_cap(gib):
    def apply():
        import resource

        limit = int(gib * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def run_timings(exe, case_file, args=(), timeout=None, memory_gib=None):
    """Runs the timing binary on a case file; one dict per case (JSON lines). With
    memory_gib, the process's address space is capped (a runaway run then aborts
    instead of taking the machine's memory)."""
    proc = subprocess.run(
        [exe, case_file, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=True,
        preexec_fn=_memory_cap(memory_gib) if memory_gib else None,
    )
    return [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    rustc = subprocess.run(["rustc", "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "rustc": rustc,
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def fmt_time(seconds):
    if seconds is None:
        return "—"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} µs"


def have(tool):
    return shutil.which(tool) is not None


def log_log(ax, title, xlabel, ylabel):
    """The axes every scaling plot uses: log-log (sizes in powers of two), titled, gridded."""
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
