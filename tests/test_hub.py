"""`temporal_rl.hub.publish_adapter`: the dry-run folder, the model card, the token, the upload call (faked).

A fake token sits in the environment and, as a trainer config's `hub_token`, in the config; no byte of the
written folder may hold it.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForImageTextToText

from temporal_rl import hub
from temporal_rl.hub import PublishError, publish_adapter

FAKE_TOKEN = "hf_FakeTokenForTests0123456789abcdef"
EVAL_REPORT = {
    "data": "data/charades_sta_test.jsonl",
    "counts": {"queries": 40},
    "tasks": {"grounding": {"n": 40, "missing": 0, "unparsed_span": 3, "R@0.3": 55.0, "R@0.5": 37.5,
                            "R@0.7": 15.0, "mIoU": 38.126}},
    "by_source": {"charades_sta": {"grounding": {"n": 40, "missing": 0, "unparsed_span": 3, "R@0.3": 55.0,
                                                 "R@0.5": 37.5, "R@0.7": 15.0, "mIoU": 38.126}}},
    "breakdowns": {},
}  # fmt: skip


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter of the tiny model (random, non-zero), saved with the usual training leftovers beside it."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    out = tmp_path_factory.mktemp("adapter")
    get_peft_model(base, config).save_pretrained(out)  # also writes PEFT's README.md template
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tiny_model_dir / name).is_file():
            shutil.copyfile(tiny_model_dir / name, out / name)
    (out / "optimizer.pt").write_bytes(b"optimizer state")
    (out / "training_args.bin").write_bytes(b"pickled args " + FAKE_TOKEN.encode())
    (out / "checkpoint-10").mkdir()
    (out / "checkpoint-10" / "adapter_model.safetensors").write_bytes(b"old")
    return out


@pytest.fixture
def fake_env(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)

    class NoNetwork:
        def __init__(self, *args, **kwargs):
            raise AssertionError("a dry run must not touch the Hub")

    monkeypatch.setattr("huggingface_hub.HfApi", NoNetwork)


def dry_run(adapter_dir, out, **kwargs):
    defaults = dict(
        eval_report=EVAL_REPORT,
        config={"method": "GRPO with IoU and format rewards", "learning_rate": 1e-5, "hub_token": FAKE_TOKEN,
                "license": "apache-2.0", "dataset_name": "someone/charades-sta-canonical"},
        commands=[f"HF_TOKEN={FAKE_TOKEN} make publish ADAPTER=x REPO=y",
                  "accelerate launch recipes/grpo.py --config recipes/grpo.yaml"],
    )  # fmt: skip
    return publish_adapter(adapter_dir, "someone/tiny-temporal-lora", dry_run_dir=out, **{**defaults, **kwargs})


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_dry_run_folder_is_the_allowlist_exactly(adapter_dir, tmp_path, fake_env):
    out = tmp_path / "upload"
    assert dry_run(adapter_dir, out) == str(out)
    expected = {"adapter_model.safetensors", "adapter_config.json", "README.md"}
    expected |= {name for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
                 if (adapter_dir / name).is_file()}  # fmt: skip
    assert {p.relative_to(out).as_posix() for p in out.rglob("*")} == expected
    assert (out / "adapter_model.safetensors").read_bytes() == (adapter_dir / "adapter_model.safetensors").read_bytes()
    assert (out / "README.md").read_text() != (adapter_dir / "README.md").read_text()  # PEFT's template replaced


def test_the_token_is_written_nowhere(adapter_dir, tmp_path, fake_env):
    out = tmp_path / "upload"
    dry_run(adapter_dir, out)
    for path in out.rglob("*"):
        assert FAKE_TOKEN.encode() not in path.read_bytes(), path
    card = (out / "README.md").read_text()
    assert "hub_token" not in card and "HF_TOKEN=$HF_TOKEN make publish" in card


def test_the_card_metadata_parses_and_carries_base_model_and_metrics(adapter_dir, tmp_path, fake_env):
    out = tmp_path / "upload"
    dry_run(adapter_dir, out)
    card = (out / "README.md").read_text()
    meta = front_matter(card)
    base = json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert meta["base_model"] == base
    assert meta["library_name"] == "peft" and meta["license"] == "apache-2.0"
    assert meta["datasets"] == ["someone/charades-sta-canonical"]
    assert "temporal_rl" in meta["tags"] and "lora" in meta["tags"]
    (result,) = meta["model-index"][0]["results"]
    assert result["dataset"] == {"name": "charades_sta", "type": "charades_sta"}
    metrics = {m["type"]: m["value"] for m in result["metrics"]}
    assert metrics == {"R@0.3": 55.0, "R@0.5": 37.5, "R@0.7": 15.0, "mIoU": 38.13}
    body = card.split("---\n", 2)[2]
    assert "| charades_sta | grounding | mIoU | 38.13 |" in body
    assert "GRPO with IoU and format rewards." in body and "learning_rate: 1.0e-05" in body
    assert "accelerate launch recipes/grpo.py" in body and "| transformers |" in body

    from huggingface_hub import ModelCard

    assert ModelCard(card).data.base_model == base  # huggingface_hub reads it back


def test_the_dry_run_adapter_loads_and_gives_the_same_outputs(adapter_dir, tiny_model_dir, tmp_path, fake_env):
    from peft import PeftModel

    out = tmp_path / "upload"
    dry_run(adapter_dir, out)
    input_ids = torch.tensor([[5, 17, 42, 99, 300, 7]])
    outputs = []
    for folder in (adapter_dir, out):
        base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
        model = PeftModel.from_pretrained(base, folder).eval()
        with torch.no_grad():
            outputs.append(model(input_ids=input_ids).logits)
    with torch.no_grad():
        plain = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()(input_ids=input_ids).logits
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.allclose(outputs[0], plain)  # the adapter does something


def test_the_upload_sends_the_staged_folder_with_the_environment_token(adapter_dir, monkeypatch):
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kwargs):
            calls["create_repo"] = (repo_id, kwargs)

        def upload_folder(self, *, repo_id, folder_path, **kwargs):
            calls["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            calls["card"] = (Path(folder_path) / "README.md").read_text()
            return "https://huggingface.co/someone/tiny-temporal-lora/commit/abc"

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    url = publish_adapter(adapter_dir, "someone/tiny-temporal-lora", eval_report=EVAL_REPORT)
    assert url.endswith("/commit/abc") and calls["token"] == FAKE_TOKEN
    assert calls["create_repo"] == ("someone/tiny-temporal-lora", {"repo_type": "model", "exist_ok": True})
    assert "optimizer.pt" not in calls["files"] and "adapter_model.safetensors" in calls["files"]
    assert FAKE_TOKEN not in calls["card"]


def test_refusals(adapter_dir, tmp_path, monkeypatch, fake_env):
    with pytest.raises(PublishError, match="user/name"):
        publish_adapter(adapter_dir, "no-slash", dry_run_dir=tmp_path / "a")
    with pytest.raises(PublishError, match="not a PEFT adapter folder, adapter_model.safetensors"):
        publish_adapter(tmp_path, "someone/x", dry_run_dir=tmp_path / "b")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(PublishError, match="holds other files"):
        publish_adapter(adapter_dir, "someone/x", dry_run_dir=busy)
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(PublishError, match="no Hub token: set HF_TOKEN"):
        publish_adapter(adapter_dir, "someone/x")
    # A file that would go up holds the token (here a processor file): the check stops before any upload.
    leaky = tmp_path / "leaky_adapter"
    leaky.mkdir()
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        shutil.copyfile(adapter_dir / name, leaky / name)
    (leaky / "tokenizer_config.json").write_text(json.dumps({"auth": FAKE_TOKEN}))
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    with pytest.raises(PublishError, match="tokenizer_config.json would carry the Hub token"):
        publish_adapter(leaky, "someone/x", dry_run_dir=tmp_path / "c")


def test_cli_dry_run(adapter_dir, tmp_path, fake_env, capsys):
    out = tmp_path / "upload"
    report = tmp_path / "metrics.json"
    report.write_text(json.dumps(EVAL_REPORT))
    argv = ["--adapter", str(adapter_dir), "--repo", "someone/x", "--dry-run", str(out), "--eval-report", str(report)]
    assert hub.main(argv) == 0
    assert "nothing uploaded" in capsys.readouterr().out
    assert hub.main(argv) == 0  # a second dry run into the same folder replaces the first
    assert front_matter((out / "README.md").read_text())["model-index"][0]["results"][0]["metrics"]


def _bare_adapter(adapter_dir: Path, folder: Path) -> Path:
    folder.mkdir()
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        shutil.copyfile(adapter_dir / name, folder / name)
    return folder


def test_a_link_out_of_the_adapter_folder_is_refused_and_a_link_inside_is_staged(adapter_dir, tmp_path, fake_env):
    """`vocab.json -> /etc/passwd` used to be followed and staged."""
    outside = tmp_path / "secret.txt"
    outside.write_text("root:x:0:0\n")
    linked = _bare_adapter(adapter_dir, tmp_path / "linked")
    (linked / "vocab.json").symlink_to(outside)
    with pytest.raises(PublishError, match=r"vocab.json is a link to .*secret.txt, outside the adapter folder"):
        dry_run(linked, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (linked / "vocab.json").unlink()
    (linked / "real_vocab.json").write_text("{}")
    (linked / "vocab.json").symlink_to(linked / "real_vocab.json")
    dry_run(linked, tmp_path / "out")
    assert (tmp_path / "out" / "vocab.json").read_text() == "{}" and not (tmp_path / "out" / "vocab.json").is_symlink()


def test_a_file_over_its_size_cap_is_refused(adapter_dir, tmp_path, fake_env, monkeypatch):
    """A 300 MB merges.txt used to be staged; the cap is lowered here so the test writes 2 MB, not 300."""
    monkeypatch.setattr(hub, "MAX_PROCESSOR_FILE_BYTES", 1 << 20)
    big = _bare_adapter(adapter_dir, tmp_path / "big")
    (big / "merges.txt").write_bytes(b"a b\n" * (2 << 18))  # 2 MiB
    with pytest.raises(PublishError, match=r"merges.txt is 2 MiB, over its cap of 1 MiB"):
        dry_run(big, tmp_path / "out")
    (big / "merges.txt").write_bytes(b"a b\n" * (1 << 18))  # exactly 1 MiB: at the cap, staged
    dry_run(big, tmp_path / "out")
    assert (tmp_path / "out" / "merges.txt").stat().st_size == 1 << 20


def test_a_refused_dry_run_leaves_no_file_behind(adapter_dir, tmp_path, fake_env):
    """After refusing a file that carries the token, the dry-run folder used to still hold it."""
    leaky = _bare_adapter(adapter_dir, tmp_path / "leaky")
    (leaky / "tokenizer_config.json").write_text(json.dumps({"auth": FAKE_TOKEN}))
    fresh, reused = tmp_path / "fresh", tmp_path / "reused"
    dry_run(adapter_dir, reused)  # a previous good dry run sits there
    for out in (fresh, reused):
        with pytest.raises(PublishError, match="tokenizer_config.json would carry the Hub token"):
            dry_run(leaky, out)
    assert not fresh.exists()
    assert list(reused.iterdir()) == []
    assert not any(FAKE_TOKEN.encode() in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()
                   and p.parent.name in ("fresh", "reused"))  # fmt: skip


def test_every_token_pattern_is_scrubbed_not_only_hf_token(adapter_dir, tmp_path, monkeypatch):
    """A token under a key not taken for a secret, or given only inside a command with HF_TOKEN unset, used to end
    up in README.md."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    other = "hf_" + "Zq9" * 12  # a second, different token: the scrub must not rely on knowing it
    out = tmp_path / "out"
    publish_adapter(
        adapter_dir, "someone/x", dry_run_dir=out,
        config={"method": "GRPO", "notes": f"pushed with {other}", "wandb": {"run": FAKE_TOKEN}},
        commands=[f"huggingface-cli login --token {FAKE_TOKEN} && make publish", f"echo {other}"],
    )  # fmt: skip
    card = (out / "README.md").read_text()
    assert FAKE_TOKEN not in card and other not in card and "hf_" not in card.replace("$HF_TOKEN", "")
    assert "huggingface-cli login --token $HF_TOKEN && make publish" in card
    # a processor file carrying some other token is refused too, whatever HF_TOKEN holds
    leaky = _bare_adapter(adapter_dir, tmp_path / "leaky")
    (leaky / "tokenizer_config.json").write_text(json.dumps({"note": other}))
    with pytest.raises(PublishError, match=r"tokenizer_config.json would carry a Hub token \(hf_...\)"):
        publish_adapter(leaky, "someone/x", dry_run_dir=tmp_path / "c")
    assert hub.scrub_tokens("hf_short and xhf_" + "a" * 40) == "hf_short and xhf_" + "a" * 40  # not token-shaped
