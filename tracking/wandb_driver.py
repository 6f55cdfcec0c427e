"""dptrain's W&B driver: delivers a run's wandb-spool.jsonl to a W&B run through the wandb SDK.

dptrain's wandb sink (tracking/wandb_sink.cpp) writes this file into the run directory, appends every record to
the spool and runs this driver beside training; `dptrain runs sync RUN_DIR --wandb` runs it to replay what was
not delivered. It logs whole segments: a segment is one wandb.init ... finish of the run (id = the dptrain run
id, resumed), acknowledged in wandb-spool.acked only after finish() has written it. Before a segment starts,
wandb-spool.acked names its directory (second line); a driver that finds that line at start knows the segment
was cut short, removes its directory and logs it again from the spool, so a crash neither loses nor repeats a
step. Each process that writes the spool begins with a start entry, which ends the segment of the one before.

Usage: python wandb-driver.py --check
       python wandb-driver.py RUN_DIR [--parent PID --start-entry N] [--mode offline|online] [--project P]
                                      [--entity E]
--check imports wandb and prints its version. With --parent, the driver follows the spool while that process
lives, from the process's start entry (index N) to its status entry, and exits there or at a later start entry;
without it, it delivers what the spool holds and exits.
"""

import argparse
import fcntl
import json
import os
import shutil
import sys
import time

SPOOL = "wandb-spool.jsonl"
ACKED = "wandb-spool.acked"
LOCK = "wandb-spool.lock"
POLL_S = 0.2
MAX_TAG = 64  # W&B refuses longer tags
EXIT_CODES = {"FINISHED": 0, "KILLED": 75}  # as the dptrain executable exits; anything else is a failure


def number(value):
    """The spool writes NaN and +-Inf as the strings "NaN", "Infinity", "-Infinity"."""
    return float(value) if isinstance(value, str) else value


class SpoolReader:
    """The spool's complete lines as they are appended. Entries count from 0 after the header; unreadable lines
    (cut short by a crash) are skipped, as dptrain's own reader skips them."""

    def __init__(self, path):
        self.file = open(path, "rb")
        self.rest = b""
        self.header = None
        self.next_index = 0

    def read(self):
        data = self.file.read()
        if not data:
            return []
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        entries = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if self.header is None:
                self.header = entry
                continue
            entries.append((self.next_index, entry))
            self.next_index += 1
        return entries


def read_acked(run_dir):
    """(entries acknowledged, suffix of the segment being logged or None)."""
    try:
        with open(os.path.join(run_dir, ACKED)) as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        return 0, None
    acked = int(lines[0]) if lines[0].strip() else 0
    open_segment = lines[1][len("open "):] if len(lines) > 1 and lines[1].startswith("open ") else None
    return acked, open_segment


def write_acked(run_dir, acked, open_segment=None):
    """Replaces wandb-spool.acked in one rename, so that a crash leaves the old state or the new one."""
    path = os.path.join(run_dir, ACKED)
    with open(path + ".tmp", "w") as f:
        f.write(f"{acked}\n" + (f"open {open_segment}\n" if open_segment else ""))
        f.flush()
        os.fsync(f.fileno())
    os.rename(path + ".tmp", path)
    directory = os.open(run_dir, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def discard_segment(run_dir, run_id, segment):
    """Removes the W&B directories of a segment cut short (its entries are logged again), and what earlier
    removals left behind; renamed first, so that `wandb sync` never sees a half-removed one."""
    wandb_dir = os.path.join(run_dir, "wandb")
    if not os.path.isdir(wandb_dir):
        return
    for name in os.listdir(wandb_dir):
        if name.endswith(f"-{run_id}-{segment}"):
            aside = os.path.join(wandb_dir, ".discarded-" + name)
            os.rename(os.path.join(wandb_dir, name), aside)
            print(f"dptrain-wandb: {name} was cut short; its entries are logged again", flush=True)
            name = ".discarded-" + name
        if name.startswith(".discarded-"):
            shutil.rmtree(os.path.join(wandb_dir, name), ignore_errors=True)


class Segment:
    """One wandb.init ... finish of the run, from spool entry `first` on."""

    def __init__(self, wandb, run_dir, header, settings, first):
        self.wandb = wandb
        self.run_dir = run_dir
        run = header["run"]
        self.run_id = run["id"]
        self.suffix = f"spool-{first}"
        write_acked(run_dir, first, self.suffix)
        tags = [key if value == "" else f"{key}={value}" for key, value in run.get("tags", {}).items()]
        self.run = wandb.init(
            mode=settings["mode"], dir=run_dir, id=self.run_id, project=settings["project"],
            entity=settings["entity"] or None, name=run.get("name") or self.run_id, config=run.get("config", {}),
            tags=[tag[:MAX_TAG] for tag in tags], resume="allow",
            settings=wandb.Settings(x_sync_dir_suffix=self.suffix, console="off", silent=True, save_code=False,
                                    disable_git=True, x_disable_stats=True, x_disable_machine_info=True))

    def deliver(self, entry):
        if "metrics" in entry:
            # A resumed online run starts after the steps its server holds (a segment cut short sent them).
            if entry["step"] < self.run.starting_step:
                return
            row = {key: number(value) for key, value in entry["metrics"].items()}
            row["epoch"] = entry["epoch"]
            row["_timestamp"] = entry["time"]  # when it was recorded, not when it is replayed
            self.run.log(row, step=entry["step"])
        elif "checkpoint" in entry:
            self.log_checkpoint(entry["checkpoint"])

    def log_checkpoint(self, checkpoint):
        """A checkpoint version as a version of the model artifact model-<run id>: its manifest as a file (small;
        it names every blob by sha256 and md5 even after the store collects the version), its blobs as
        references into the content-addressed store, and the store's aliases that name this version."""
        version = checkpoint["version"]
        manifest = json.loads(checkpoint["manifest"])
        copy = os.path.join(self.run_dir, "wandb", "manifests", version, "manifest.json")
        os.makedirs(os.path.dirname(copy), exist_ok=True)
        with open(copy, "w") as f:
            f.write(checkpoint["manifest"])
        artifact = self.wandb.Artifact(
            f"model-{self.run_id}", type="model",
            metadata={"version": version, "step": checkpoint["step"], "store": checkpoint["store"],
                      "manifest_sha256": checkpoint["manifest_sha256"], "metrics": manifest.get("metrics", {})})
        artifact.add_file(copy, name="manifest.json", policy="immutable")
        for file in manifest.get("files", []):
            blob = os.path.join(checkpoint["store"], "blobs", "sha256", file["sha256"])
            # The blob's path is its sha256, so the reference cannot come to mean other bytes: no checksum read.
            artifact.add_reference("file://" + blob, name=file["name"], checksum=False)
        aliases = sorted(alias for alias, target in checkpoint.get("aliases", {}).items() if target == version)
        self.run.log_artifact(artifact, aliases=aliases)

    def finish(self, status):
        self.run.summary["dptrain/status"] = status
        self.run.finish(exit_code=EXIT_CODES.get(status, 1))


def deliver(args, wandb):
    """Logs every unacknowledged entry; returns when the spool is done (see the module's docstring)."""
    acked, open_segment = read_acked(args.run_dir)
    path = os.path.join(args.run_dir, SPOOL)
    spool = SpoolReader(path)
    parent_alive = args.parent is not None and os.getppid() == args.parent
    entries = spool.read()
    if spool.header is None or "run" not in spool.header:
        raise SystemExit(f"{path} does not start with a run description; it was not written by dptrain")
    if open_segment:
        discard_segment(args.run_dir, spool.header["run"]["id"], open_segment)
        write_acked(args.run_dir, acked)
    segment = None
    while True:
        for index, entry in entries:
            if index < acked:
                continue
            if "start" in entry:  # a new process: the segment of the one before ended without a status
                if segment is not None:
                    segment.finish("FAILED")
                    segment = None
                if args.parent is not None and index > args.start_entry:
                    write_acked(args.run_dir, index)  # a later process's entries: its own driver logs them
                    return
                acked = index + 1
                write_acked(args.run_dir, acked)
                continue
            if segment is None:
                segment = Segment(wandb, args.run_dir, spool.header, settings(args, spool.header), index)
            segment.deliver(entry)
            if "status" in entry:
                segment.finish(entry["status"])
                segment = None
                acked = index + 1
                write_acked(args.run_dir, acked)
                if args.parent is not None and index > args.start_entry:
                    return
        if not entries and not parent_alive:
            break
        if not entries:
            time.sleep(POLL_S)
        parent_alive = args.parent is not None and os.getppid() == args.parent
        entries = spool.read()
    if segment is not None:  # the process that wrote the spool ended without a status
        segment.finish("FAILED")
        write_acked(args.run_dir, spool.next_index)


def settings(args, header):
    """The command line's settings, else the ones the spool's header recorded."""
    recorded = header.get("wandb", {})
    return {key: getattr(args, key) if getattr(args, key) is not None else recorded.get(key, default)
            for key, default in (("mode", "offline"), ("project", "dptrain"), ("entity", ""))}


def main():
    # Descriptors the training process did not mean to hand down (sockets, the spool) are closed.
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    if sys.argv[1:] == ["--check"]:
        try:
            import wandb
        except ImportError as e:
            print(f"cannot import wandb: {e}", flush=True)
            return 3
        print(f"wandb {wandb.__version__}", flush=True)
        return 0
    parser = argparse.ArgumentParser(description="Delivers a dptrain run's wandb-spool.jsonl to W&B.")
    parser.add_argument("run_dir")
    parser.add_argument("--parent", type=int, help="follow the spool while this process lives")
    parser.add_argument("--start-entry", type=int, default=0, help="with --parent: the index of its start entry")
    parser.add_argument("--mode", choices=["offline", "online"])
    parser.add_argument("--project")
    parser.add_argument("--entity")
    args = parser.parse_args()
    args.run_dir = os.path.abspath(args.run_dir)  # W&B records file paths as given
    os.nice(10)  # training comes first
    with open(os.path.join(args.run_dir, LOCK), "a") as lock:
        # A driver still delivering an earlier process's entries of this run finishes first.
        fcntl.flock(lock, fcntl.LOCK_EX)
        import wandb

        deliver(args, wandb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
