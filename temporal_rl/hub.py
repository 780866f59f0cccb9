"""Publishing a LoRA adapter to the Hugging Face Hub with a generated model card.

    publish_adapter("runs/grpo/adapter", "user/qwen2.5-vl-7b-temporal-rlt",
                    eval_report="runs/eval/metrics.json", recipe="recipes/.../grpo/charades_sta.yaml",
                    commands=["accelerate launch recipes/grpo.py --config ..."])

or `make publish ADAPTER=<dir> REPO=<user/name> [DRY_RUN=<dir>]` (`python -m temporal_rl.hub`).

Only an allowlist of files goes up: `adapter_model.safetensors` and `adapter_config.json` (both required), the
tokenizer and processor files when the adapter folder has them (`PROCESSOR_FILES`), and the generated `README.md`
(an existing one, such as PEFT's template, is replaced). Checkpoints, optimizer states, training arguments
and anything else in the folder stay home.

The card: YAML front matter (base_model, library_name peft, pipeline tag, tags, license when known, Hub datasets
named in the config, model-index with the metrics of the eval reports) and a body with the method, the LoRA
settings, the recipe and config, the data, a metrics table, the commands that reproduce the adapter and the
library versions.

The token comes from `token=` or the environment (`HF_TOKEN`) and goes to huggingface_hub only: config keys
that look like secrets (`hub_token`, `*password*`, ...) are dropped from the card, any occurrence of the token and
any other `hf_...` token pattern (`HF_TOKEN_RE`) in the config and the commands is replaced by `$HF_TOKEN`, and
every file of the staged folder is checked to contain neither before anything is uploaded. An allowlisted name
that links out of the adapter folder, or a file over its size cap, is refused. A dry run (`dry_run_dir`) writes
exactly the folder that would be uploaded and uploads nothing; a refused dry run leaves no file behind.

This module owns the upload folder, the model card and the upload call. It does not train or evaluate.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
PROCESSOR_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.json",
    "chat_template.jinja",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "processor_config.json",
)
CARD_FILE = "README.md"
ALLOWED_FILES = (*ADAPTER_FILES, *PROCESSOR_FILES, CARD_FILE)
TOKEN_ENV_VAR = "HF_TOKEN"
SECRET_KEY_RE = re.compile(r"token|secret|password|passwd|api[_-]?key|credential", re.IGNORECASE)
# Any Hugging Face token, wherever it sits (a config value under an innocent key, a command line): `hf_` and 30+
# letters and digits, not inside a longer word. No nested quantifier: linear in the text.
HF_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{30,}")
# Largest file staged, by name: the adapter weights of a 32B model at rank 128 are about 1 GB; a tokenizer or
# processor file is a few MB. A bigger one is not what the name says.
MAX_ADAPTER_BYTES = 4 << 30
MAX_PROCESSOR_FILE_BYTES = 64 << 20
REDACTED = "<redacted>"

# Base models whose licence is known (the Hub model card's `license`); others get none unless the config says.
KNOWN_LICENSES = {
    "Qwen/Qwen2.5-VL-7B-Instruct": "apache-2.0",
    "Qwen/Qwen2.5-VL-32B-Instruct": "apache-2.0",
}
BASE_TAGS = ("temporal_rl", "peft", "lora", "video-text-to-text", "qwen2.5-vl", "video-grounding", "video-qa")
LIBRARIES = ("temporal-rl", "torch", "transformers", "trl", "peft", "accelerate", "huggingface_hub")
TASK_NAMES = {
    "grounding": "temporal grounding",
    "mcq": "video multiple-choice QA",
    "grounded_qa": "grounded video QA",
    "open_qa": "open video QA",
}


class PublishError(ValueError):
    """The adapter cannot be published as asked; the message says why (never the token)."""


# ---------------------------------------------------------------------------------------------------------------
# Inputs


def _read_mapping(value: str | os.PathLike | Mapping | None, what: str) -> dict | None:
    """A dict from a dict, or a YAML / JSON file."""
    if value is None or isinstance(value, Mapping):
        return None if value is None else dict(value)
    path = Path(value)
    if not path.is_file():
        raise PublishError(f"{what} {path}: file not found")
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise PublishError(f"{what} {path}: expected a mapping at the top, got {type(loaded).__name__}")
    return loaded


def redact_secrets(value: Any) -> Any:
    """A copy of a config with every key that looks like a secret (token, password, api key...) dropped, and any
    Hub token pattern in the strings left replaced by `$HF_TOKEN`."""
    if isinstance(value, Mapping):
        return {k: redact_secrets(v) for k, v in value.items() if not SECRET_KEY_RE.search(str(k))}
    if isinstance(value, list):
        return [redact_secrets(v) for v in value]
    if isinstance(value, str):
        return HF_TOKEN_RE.sub(f"${TOKEN_ENV_VAR}", value)
    return value


def read_adapter_config(adapter_dir: Path) -> dict:
    missing = [name for name in ADAPTER_FILES if not (adapter_dir / name).is_file()]
    if missing:
        raise PublishError(f"{adapter_dir}: not a PEFT adapter folder, {', '.join(missing)} missing")
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if not config.get("base_model_name_or_path"):
        raise PublishError(f"{adapter_dir / 'adapter_config.json'}: no base_model_name_or_path")
    return config


def _eval_reports(eval_report) -> list[dict]:
    if eval_report is None:
        return []
    reports = eval_report if isinstance(eval_report, (list, tuple)) else [eval_report]
    out = []
    for report in reports:
        if isinstance(report, Mapping):
            out.append(dict(report))
            continue
        path = Path(report)
        if not path.is_file():
            raise PublishError(f"eval report {path}: file not found")
        out.append(json.loads(path.read_text(encoding="utf-8")))
    return out


# ---------------------------------------------------------------------------------------------------------------
# The card


def metric_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`{"dataset", "task", "metric", "value"}` per metric of an eval report (`temporal_rl.eval`'s metrics.json):
    per source and task, plus the benchmark macro means (MLVU's M-Avg...). Counts are left out."""
    from temporal_rl.eval.metrics import METRIC_NAMES

    rows = []
    for source, tasks in report.get("by_source", {}).items():
        for task, metrics in tasks.items():
            for name in METRIC_NAMES.get(task, ()):
                if name in metrics:
                    rows.append({"dataset": source, "task": task, "metric": name, "value": round(metrics[name], 2)})
    for source, entry in (report.get("breakdowns") or {}).items():
        for name, value in entry.items():
            if isinstance(value, (int, float)):
                rows.append({"dataset": source, "task": "mcq", "metric": name, "value": round(value, 2)})
    return rows


def _hub_datasets(*configs: Mapping | None) -> list[str]:
    """Hub dataset ids named in the configs (`dataset_name`, `dataset_names`, `datasets`): `owner/name` strings."""
    found = []
    for config in configs:
        for key in ("dataset_name", "dataset_names", "datasets"):
            values = (config or {}).get(key)
            for value in values if isinstance(values, list) else [values]:
                if isinstance(value, str) and re.fullmatch(r"[\w.-]+/[\w.-]+", value) and value not in found:
                    found.append(value)
    return found


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    versions["python"] = sys.version.split()[0]
    return versions


def card_metadata(
    repo_id: str, adapter_config: Mapping, reports: Sequence[Mapping], recipe: Mapping | None, config: Mapping | None
):
    """The card's YAML metadata as huggingface_hub's `ModelCardData` (model-index built from the eval reports)."""
    from huggingface_hub import EvalResult, ModelCardData

    settings = {**(recipe or {}), **(config or {})}
    base_model = settings.get("base_model") or adapter_config["base_model_name_or_path"]
    results = [
        EvalResult(
            task_type="video-text-to-text",
            task_name=TASK_NAMES.get(row["task"], row["task"]),
            dataset_type=row["dataset"],
            dataset_name=row["dataset"],
            metric_type=row["metric"],
            metric_name=row["metric"],
            metric_value=row["value"],
        )
        for report in reports
        for row in metric_rows(report)
    ]
    tags = list(BASE_TAGS) + [t for t in settings.get("tags", []) if isinstance(t, str) and t not in BASE_TAGS]
    return ModelCardData(
        base_model=base_model,
        library_name="peft",
        pipeline_tag="video-text-to-text",
        license=settings.get("license") or KNOWN_LICENSES.get(base_model),
        tags=tags,
        datasets=_hub_datasets(recipe, config) or None,
        model_name=repo_id.split("/")[-1],
        eval_results=results or None,
    )


def _yaml_block(data: Mapping) -> str:
    return "```yaml\n" + yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True).rstrip() + "\n```"


def card_body(
    repo_id: str,
    adapter_config: Mapping,
    reports: Sequence[Mapping],
    recipe: Mapping | None,
    recipe_name: str | None,
    config: Mapping | None,
    commands: Sequence[str],
) -> str:
    """The card's Markdown body: method, LoRA settings, recipe and config, data, metrics, commands, versions."""
    base_model = ((config or {}).get("base_model") or (recipe or {}).get("base_model")
                  or adapter_config["base_model_name_or_path"])  # fmt: skip
    method = (config or {}).get("method") or (recipe or {}).get("method") or "RL fine-tuning with temporal_rl"
    lora = {key: adapter_config.get(key) for key in ("peft_type", "r", "lora_alpha", "lora_dropout", "target_modules")}
    lines = [
        f"# {repo_id.split('/')[-1]}",
        "",
        f"A LoRA adapter for `{base_model}`, trained with temporal_rl (RL fine-tuning of video language models on "
        "TRL) for video question answering and temporal grounding.",
        "",
        "## Method",
        "",
        f"{method}.",
        "",
        _yaml_block({k: v for k, v in lora.items() if v is not None}),
        "",
        "Load it with PEFT:",
        "",
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForImageTextToText",
        "",
        f'model = AutoModelForImageTextToText.from_pretrained("{base_model}")',
        f'model = PeftModel.from_pretrained(model, "{repo_id}")',
        "```",
    ]
    if recipe:
        lines += ["", "## Recipe", ""] + ([f"`{recipe_name}`", ""] if recipe_name else []) + [_yaml_block(recipe)]
    if config:
        lines += ["", "## Config", "", _yaml_block(config)]
    data = [str(report["data"]) for report in reports if report.get("data")]
    datasets = _hub_datasets(recipe, config)
    if data or datasets:
        lines += ["", "## Data", ""] + [f"- training: `{name}`" for name in datasets]
        lines += [f"- evaluation: `{name}`" for name in data]
    rows = [row for report in reports for row in metric_rows(report)]
    if rows:
        lines += ["", "## Metrics", "", "| data set | task | metric | value |", "|---|---|---|---|"]
        lines += [f"| {r['dataset']} | {r['task']} | {r['metric']} | {r['value']:.2f} |" for r in rows]
    if commands:
        lines += ["", "## Reproduce", "", "```bash", *commands, "```"]
    versions = library_versions()
    lines += ["", "## Library versions", "", "| library | version |", "|---|---|"]
    lines += [f"| {name} | {version} |" for name, version in versions.items()]
    return "\n".join(lines) + "\n"


def render_card(metadata_yaml: str, body: str) -> str:
    """README.md text: YAML front matter then the body (no template engine: recipe text is never interpreted)."""
    return f"---\n{metadata_yaml.strip()}\n---\n\n{body}"


# ---------------------------------------------------------------------------------------------------------------
# The upload folder


def upload_files(adapter_dir: Path) -> list[str]:
    """The allowlisted files of the adapter folder, in `ALLOWED_FILES` order (the card excluded: it is generated).

    Raises:
        PublishError: an allowlisted name is a link that leads out of the adapter folder (`vocab.json ->
            /etc/passwd`), or a file is over its size cap (`MAX_ADAPTER_BYTES` for the weights,
            `MAX_PROCESSOR_FILE_BYTES` for the rest).
    """
    root = adapter_dir.resolve()
    names = []
    for name in (*ADAPTER_FILES, *PROCESSOR_FILES):
        path = adapter_dir / name
        if not (path.is_file() or path.is_symlink()):
            continue
        target = path.resolve()
        if path.is_symlink() and not target.is_relative_to(root):
            raise PublishError(f"{name} is a link to {target}, outside the adapter folder; nothing was uploaded")
        if not target.is_file():
            raise PublishError(f"{name} is not a regular file; nothing was uploaded")
        cap = MAX_ADAPTER_BYTES if name == ADAPTER_FILES[0] else MAX_PROCESSOR_FILE_BYTES
        size = target.stat().st_size
        if size > cap:
            raise PublishError(
                f"{name} is {size / 2**20:.0f} MiB, over its cap of {cap / 2**20:.0f} MiB; nothing was uploaded"
            )
        names.append(name)
    return names


def scrub_tokens(text: str, token: str | None = None) -> str:
    """`text` with the given token and every other `hf_...` token pattern replaced by `$HF_TOKEN`.

    Example:
        ```python
        >>> scrub_tokens("HF_TOKEN=hf_" + "a1" * 17 + " make publish; key=s3cret", token="s3cret")
        'HF_TOKEN=$HF_TOKEN make publish; key=$HF_TOKEN'
        ```
    """
    if token:
        text = text.replace(token, f"${TOKEN_ENV_VAR}")
    return HF_TOKEN_RE.sub(f"${TOKEN_ENV_VAR}", text)


def assert_token_absent(folder: Path, token: str | None) -> None:
    """Fail if any file under `folder` holds the token or anything shaped like a Hub token (`HF_TOKEN_RE`)."""
    needle = token.encode() if token else None
    pattern = re.compile(HF_TOKEN_RE.pattern.encode())
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        content = path.read_bytes()
        if needle and needle in content:
            raise PublishError(f"{path.name} would carry the Hub token; nothing was uploaded")
        if pattern.search(content):
            raise PublishError(f"{path.name} would carry a Hub token (hf_...); nothing was uploaded")


def stage_folder(
    folder: Path,
    adapter_dir: Path,
    repo_id: str,
    *,
    eval_report=None,
    recipe=None,
    config=None,
    commands: Sequence[str] | None = None,
    token: str | None = None,
) -> list[str]:
    """Write the upload folder: the allowlisted adapter files and the card. Returns the file names written."""
    adapter_config = read_adapter_config(adapter_dir)
    reports = _eval_reports(eval_report)
    recipe_dict = redact_secrets(_read_mapping(recipe, "recipe"))
    config_dict = redact_secrets(_read_mapping(config, "config"))
    recipe_name = None if recipe is None or isinstance(recipe, Mapping) else str(recipe)
    clean_commands = [scrub_tokens(str(command), token) for command in commands or ()]
    names = upload_files(adapter_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(adapter_dir / name, folder / name)
    metadata_yaml = card_metadata(repo_id, adapter_config, reports, recipe_dict, config_dict).to_yaml()
    body = card_body(repo_id, adapter_config, reports, recipe_dict, recipe_name, config_dict, clean_commands)
    (folder / CARD_FILE).write_text(scrub_tokens(render_card(metadata_yaml, body), token), encoding="utf-8")
    assert_token_absent(folder, token)
    return [*names, CARD_FILE]


def _prepare_dry_run_dir(path: Path) -> None:
    """An empty folder, or one holding only a previous dry run's files (cleared); anything else is refused."""
    if not path.exists():
        return
    if not path.is_dir():
        raise PublishError(f"dry run folder {path} is not a folder")
    foreign = [p.name for p in path.iterdir() if p.name not in ALLOWED_FILES or not p.is_file()]
    if foreign:
        raise PublishError(f"dry run folder {path} holds other files ({', '.join(sorted(foreign))}); use an empty one")
    for child in path.iterdir():
        child.unlink()


def _clear_staged(folder: Path, *, remove: bool) -> None:
    """Delete what staging wrote into `folder` (only allowlisted names ever are), and the folder if it made it."""
    if not folder.is_dir():
        return
    for name in ALLOWED_FILES:
        (folder / name).unlink(missing_ok=True)
    if remove and not any(folder.iterdir()):
        folder.rmdir()


def _check_repo_id(repo_id: str) -> None:
    if not isinstance(repo_id, str) or not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise PublishError(f"repo id must look like 'user/name', got {repo_id!r}")


def publish_adapter(
    adapter_dir: str | os.PathLike,
    repo_id: str,
    *,
    eval_report: str | os.PathLike | Mapping | Sequence | None = None,
    recipe: str | os.PathLike | Mapping | None = None,
    config: str | os.PathLike | Mapping | None = None,
    commands: Sequence[str] | None = None,
    dry_run_dir: str | os.PathLike | None = None,
    token: str | None = None,
) -> str:
    """Upload a LoRA adapter with a generated model card, or (dry run) write the folder that would be uploaded.

    Args:
        adapter_dir: the PEFT adapter folder (`save_pretrained` output).
        repo_id: `user/name` on the Hub (created if missing).
        eval_report: metrics.json of `python -m temporal_rl.eval.run` / `temporal_rl.eval` (path or dict), or a list.
        recipe: the recipe YAML (path or dict), shown in the card.
        config: the training config (YAML / JSON path or dict); keys `method`, `license`, `base_model`, `tags`,
            `dataset_name(s)` / `datasets` also feed the metadata.
        commands: the command lines that reproduce the adapter.
        dry_run_dir: write the upload folder here and upload nothing.
        token: the Hub token; default `$HF_TOKEN`. Never written anywhere.

    Returns:
        The dry run folder, or the URL of the upload commit.

    Raises:
        PublishError: not an adapter folder, a bad repo id, no token for a real upload, or a file would carry it.
    """
    _check_repo_id(repo_id)
    adapter_dir = Path(adapter_dir)
    token = token or os.environ.get(TOKEN_ENV_VAR) or None
    stage = dict(eval_report=eval_report, recipe=recipe, config=config, commands=commands, token=token)
    if dry_run_dir is not None:
        folder = Path(dry_run_dir)
        created = not folder.exists()
        _prepare_dry_run_dir(folder)
        try:
            stage_folder(folder, adapter_dir, repo_id, **stage)
        except BaseException:
            # a refused folder is left as it was found (gone, or empty): never half a folder holding a token
            _clear_staged(folder, remove=created)
            raise
        return str(folder)
    if not token:
        raise PublishError(f"no Hub token: set {TOKEN_ENV_VAR} in the environment (or use a dry run)")
    from huggingface_hub import HfApi

    with tempfile.TemporaryDirectory(prefix="temporal_rl_publish_") as staging:
        stage_folder(Path(staging), adapter_dir, repo_id, **stage)
        api = HfApi(token=token)
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=staging, repo_type="model", commit_message="Upload LoRA adapter (temporal_rl)"
        )
    return str(getattr(commit, "commit_url", commit))


# ---------------------------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m temporal_rl.hub", description="Upload a LoRA adapter with a generated model card."
    )
    parser.add_argument("--adapter", required=True, help="PEFT adapter folder")
    parser.add_argument("--repo", required=True, help="Hub repo id, user/name")
    parser.add_argument("--dry-run", default=None, help="write the upload folder here, upload nothing")
    parser.add_argument("--eval-report", nargs="*", default=None, help="metrics.json file(s) from temporal_rl.eval")
    parser.add_argument("--recipe", default=None, help="recipe YAML")
    parser.add_argument("--config", default=None, help="training config (YAML or JSON)")
    parser.add_argument("--command", action="append", default=None, help="a command that reproduces it (repeat)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        where = publish_adapter(
            args.adapter,
            args.repo,
            eval_report=args.eval_report or None,
            recipe=args.recipe,
            config=args.config,
            commands=args.command,
            dry_run_dir=args.dry_run,
        )
    except PublishError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    verb = "wrote the upload folder (nothing uploaded) to" if args.dry_run else "uploaded"
    sys.stdout.write(f"{verb} {where}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
