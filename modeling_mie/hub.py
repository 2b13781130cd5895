"""Hub-ready model folders: the model card with MEGC 2019 results, folder checks and the upload."""

from __future__ import annotations

import ast
import json
import logging
import os
import struct
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import MieInputError

logger = logging.getLogger(__name__)

# The card template. The repository root holds `model_card.md` (the name DESIGN.md fixes); the
# package renders this byte-identical copy, shipped as package data (`resources/*.md`), so a
# checkout and an installed wheel render the same card. tests/test_hub.py keeps the two equal.
TEMPLATE_RESOURCE = "resources/model_card.md"

# Display names of the database keys that loaders, metrics and results use.
DATABASE_NAMES: dict[str, str] = {"smic": "SMIC", "casme2": "CASME II", "samm": "SAMM"}
MEGC2019_NAME = "MEGC 2019 composite (SMIC + CASME II + SAMM)"

# The auto classes a Hub folder must map to its own code (config.json `auto_map`): AutoModel is
# added by `MieForVideoClassification.save_pretrained`, the other two by `register_for_auto_class`.
REQUIRED_AUTO_MAP: tuple[str, ...] = ("AutoConfig", "AutoModel", "AutoModelForVideoClassification")

# Files that must never reach a Hub repo even if they sit in the folder (stale bytecode from
# someone importing the copied code files).
UPLOAD_IGNORE_PATTERNS: list[str] = ["__pycache__/*", "*/__pycache__/*", "*.pyc"]

TASK_TYPE = "video-classification"
TASK_NAME = "Micro-expression recognition"
BASE_TAGS: tuple[str, ...] = ("micro-expression", "facial-expression", "emotion-recognition", "megc2019", "loso")


# ------------------------------------------------------------------------------------ model card
def default_template_path() -> Path:
    """Path of the card template shipped with the package (identical to the root `model_card.md`)."""
    return Path(str(resources.files(__package__).joinpath(TEMPLATE_RESOURCE)))


def _dataset_names(databases: list[str], synthetic: bool) -> tuple[str, str]:
    """(name, type) of the evaluated data for the model-index, from the databases present."""
    if synthetic:
        parts = " + ".join(f"{DATABASE_NAMES.get(db, db)}-like" for db in databases)
        return (f"mie synthetic micro-expression clips ({parts})" if parts else "mie synthetic micro-expression clips",
                "mie-synthetic")
    if set(databases) == set(DATABASE_NAMES):
        return MEGC2019_NAME, "megc2019"
    if not databases:
        return "micro-expression clips", "micro-expressions"
    return " + ".join(DATABASE_NAMES.get(db, db) for db in databases), "-".join(databases)


def _check_results(results: Mapping) -> list[str]:
    """The database keys of a `megc_scores` dict, after checking its shape (ValueError if wrong)."""
    if not isinstance(results, Mapping) or "full" not in results:
        raise ValueError(
            "results must be the dict that modeling_mie.metrics.megc_scores returns: "
            '{"full": {"uf1", "uar", "clips", "subjects"}, "<database>": {...}}; '
            f"got keys {sorted(results) if isinstance(results, Mapping) else type(results).__name__}."
        )
    for name, scores in results.items():
        missing = [key for key in ("uf1", "uar", "clips", "subjects") if key not in (scores or {})]
        if missing:
            raise ValueError(f"results[{name!r}] lacks {missing}; expected uf1, uar, clips and subjects.")
    # Databases in a fixed, readable order (SMIC, CASME II, SAMM as in the MEGC tables), others after.
    order = {db: i for i, db in enumerate(DATABASE_NAMES)}
    return sorted((k for k in results if k != "full"), key=lambda db: (order.get(db, len(order)), db))


def _config_summary(config: Any) -> dict:
    """What the card says about the architecture, from a `MieConfig` or its dict."""
    values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    id2label = values.get("id2label") or {}
    labels = [id2label[key] for key in sorted(id2label, key=int)]
    scale = float(values.get("crop_scale", 1.0))
    # The config's own rounding when it is a MieConfig, so the card shows what the model crops.
    crop_sizes = getattr(config, "region_crop_sizes", None)
    regions = []
    for index, region in enumerate(values.get("regions") or []):
        x0, y0, x1, y1 = (int(v) for v in region["box"])
        height, width = crop_sizes[index] if crop_sizes else (round((y1 - y0) * scale), round((x1 - x0) * scale))
        regions.append({
            "name": region["name"],
            "box": [x0, y0, x1, y1],
            "crop": f"{width} x {height}",
            "emotions": list(region.get("emotions") or []),
        })
    return {
        "labels": labels,
        "regions": regions,
        "canvas_size": [int(v) for v in values.get("canvas_size") or (0, 0)],
        "crop_scale": scale,
        "num_channels": int(values.get("num_channels", 1)),
        "cnn_hidden_size": values.get("cnn_hidden_size"),
        "region_feature_size": values.get("region_feature_size"),
        "lstm_hidden_size": values.get("lstm_hidden_size"),
        "fusion_hidden_size": values.get("fusion_hidden_size"),
        "input_mode": values.get("input_mode", "frames"),
        "standardize_features": bool(values.get("standardize_features", False)),
        "align": bool(values.get("align", False)),
        "max_head_turn": values.get("max_head_turn", 20.0),
    }


def _format_setting(value: Any) -> str:
    """One training setting as table text (no `|`, which would split the Markdown cell)."""
    if isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def render_model_card(
    results: dict,
    *,
    model_id: str,
    data_description: str,
    protocol: str,
    preset: str,
    config: Any,
    training: dict,
    limitations: str,
    synthetic: bool,
    template_path: str | os.PathLike | None = None,
    dataset_name: str | None = None,
    dataset_type: str | None = None,
    license: str = "apache-2.0",
    tags: list[str] | None = None,
    calibration: dict | None = None,
) -> str:
    """Render the model card (README.md) of a Hub-ready folder.

    The YAML header is a `ModelCardData` whose `model-index` holds UF1 and UAR (`metric_type`
    "uf1" / "uar") for the full set and for each database in `results`, with the clip and
    subject counts as dataset args, so `ModelCard.load(path).data.eval_results` gives them back.
    The body says what the model is, how to load it, the LOSO table, published results for
    context, the data, the protocol, the preset and training settings and the limitations; with
    `synthetic=True` it states up front that the model is not a real recogniser.

    Args:
        results: `modeling_mie.metrics.megc_scores` output: `{"full": {"uf1", "uar", "clips",
            "subjects"}, "<database>": {...}}`. Scores are fractions in [0, 1].
        model_id: the repo id (or local path) shown in the title and the loading examples.
        data_description: Markdown paragraph(s) on the data used (databases, clip counts,
            preprocessing, or the synthetic profile and seed).
        protocol: Markdown paragraph(s) on the evaluation run (folds, seed, ...); the card adds
            the fixed statement of the honest LOSO rules.
        preset: the training preset's name (`paper`, `fast`, ...).
        config: the `MieConfig` of the model (or its dict): labels, regions and sizes.
        training: training settings, shown as a table in insertion order.
        limitations: extra Markdown appended to the standard limitations ("" for none).
        synthetic: True when the model was trained on the synthetic clips.
        template_path: a Jinja2 template to use instead of the packaged one.
        calibration: the LOSO run's `calibration` (`modeling_mie.calibration.summary_for_json`:
            `temperature`, `ece_before`, `ece_after`, `num_bins`); None leaves it out.
        dataset_name, dataset_type: the model-index dataset; by default derived from the
            databases present (the MEGC 2019 composite, or the synthetic data).
        license: the card's license id.
        tags: extra Hub tags.

    Returns:
        The card as Markdown with a YAML header.

    Raises:
        ValueError: `results` is not shaped like `megc_scores` output.
        MieInputError: `template_path` does not exist.
    """
    import jinja2  # torch already depends on it; imported here to keep package import light
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    databases = _check_results(results)
    default_name, default_type = _dataset_names(databases, synthetic)
    dataset_name = dataset_name or default_name
    dataset_type = dataset_type or default_type

    eval_results = []
    rows = []
    for key in ["full", *databases]:
        scores = results[key]
        if key == "full":
            name, row_name = dataset_name, "full"
        else:
            label = DATABASE_NAMES.get(key, key) + ("-like" if synthetic else "")
            name, row_name = f"{dataset_name}: {label} part", label
        rows.append({"name": row_name, "uf1": float(scores["uf1"]), "uar": float(scores["uar"]),
                     "clips": int(scores["clips"]), "subjects": int(scores["subjects"])})
        for metric in ("uf1", "uar"):
            eval_results.append(EvalResult(
                task_type=TASK_TYPE,
                task_name=TASK_NAME,
                dataset_type=dataset_type,
                dataset_name=name,
                dataset_config=key,
                # LOSO has no fixed test split: every clip is scored once, by the fold that held
                # its subject out.
                dataset_split="loso",
                dataset_args={"clips": int(scores["clips"]), "subjects": int(scores["subjects"])},
                metric_type=metric,
                metric_name=metric.upper(),
                # Four decimals, as MEGC tables report them; with a few hundred clips the figures
                # carry no more than that.
                metric_value=round(float(scores[metric]), 4),
            ))

    card_tags = [*BASE_TAGS, *(["synthetic-data"] if synthetic else []), *(tags or [])]
    card_data = ModelCardData(
        model_name=model_id,
        license=license,
        library_name="transformers",
        pipeline_tag=TASK_TYPE,
        tags=card_tags,
        metrics=["uf1", "uar"],
        eval_results=eval_results,
    )

    path = Path(template_path) if template_path is not None else default_template_path()
    if not path.is_file():
        raise MieInputError(f"Model card template {path} does not exist; pass template_path=None for the packaged one.")
    # StrictUndefined: a misspelt variable in the template fails here instead of leaving a blank.
    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True
    )
    template = environment.from_string(path.read_text(encoding="utf-8"))
    content = template.render(
        card_data=card_data.to_yaml(),
        model_id=model_id,
        synthetic=bool(synthetic),
        dataset_name=dataset_name,
        results_rows=rows,
        data_description=data_description.strip(),
        protocol=protocol.strip(),
        preset=preset,
        training_rows=[(str(key), _format_setting(value)) for key, value in (training or {}).items()],
        limitations=(limitations or "").strip(),
        license=license,
        calibration=calibration,
        **_config_summary(config),
    )
    # Parsing through ModelCard checks that the header is valid YAML with a readable model-index.
    return str(ModelCard(content, ignore_metadata_errors=False))


# ---------------------------------------------------------------------------------- folder checks
_CARD_SECTION = "<!-- mie-evaluation:{key} -->"
_CARD_SECTION_END = "<!-- /mie-evaluation:{key} -->"


def record_card_evaluation(model_dir: str | os.PathLike, key: str, text: str) -> Path:
    """Put (or replace) one evaluation paragraph in a model folder's card (README.md), under its
    LOSO figures: e.g. the score on a held-out style (`train/evaluate.py --card`) or on the
    real-expression set (`python -m modeling_mie.real_eval --card`). The paragraph is fenced by
    HTML comments named `key`, so running the evaluation again replaces it.

    Raises:
        MieInputError: the folder has no README.md (not a model folder written by train/loso.py).
    """
    from .errors import MieInputError

    card = Path(model_dir) / "README.md"
    if not card.is_file():
        raise MieInputError(f"{model_dir} has no model card (README.md) to record the evaluation in; pass a model folder written by train/loso.py.")
    content = card.read_text(encoding="utf-8")
    start, end = _CARD_SECTION.format(key=key), _CARD_SECTION_END.format(key=key)
    block = f"{start}\n{text.strip()}\n{end}\n"
    if start in content and end in content:
        before, rest = content.split(start, 1)
        content = before + block.rstrip("\n") + rest.split(end, 1)[1]
    else:
        anchors = ("Published results on the real MEGC 2019", "## Data")
        at = next((content.index(a) for a in anchors if a in content), len(content))
        content = content[:at] + block + "\n" + content[at:]
    card.write_text(content, encoding="utf-8")
    return card


def _relative_imports(path: Path) -> list[str]:
    """Module names a code file imports as `from .name import ...` (what remote code copies)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            names.append(node.module)
    return names


def _auto_map_modules(auto_map: Mapping) -> list[str]:
    """Module names that an `auto_map` refers to in the folder itself ("module.Class")."""
    modules = []
    for value in auto_map.values():
        for reference in value if isinstance(value, (list, tuple)) else [value]:
            # "other/repo--module.Class" points at another repository's code: not ours to check.
            if isinstance(reference, str) and "--" not in reference and "." in reference:
                modules.append(reference.rsplit(".", 1)[0])
    return modules


def _safetensors_problem(path: Path) -> str | None:
    """Why a file is not a readable safetensors file, or None (reads only the header)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                return f"{path.name} is too short to be a safetensors file"
            (length,) = struct.unpack("<Q", head)
            if length > path.stat().st_size - 8:
                return f"{path.name} has a header longer than the file (truncated upload or copy?)"
            json.loads(handle.read(length))
    except (OSError, ValueError) as error:
        return f"{path.name} is not a readable safetensors file ({error})"
    return None


def validate_model_folder(folder: str | os.PathLike) -> list[str]:
    """Problems that would keep a folder from working as a Hub model repo; empty when fine.

    Checks: config.json parses and its `auto_map` has AutoConfig, AutoModel and
    AutoModelForVideoClassification; model.safetensors is there with a readable header; every
    code file named in the `auto_map` of config.json (and of preprocessor_config.json, when
    present) is there, with every file it imports as `from .name import ...`, since
    `trust_remote_code` loading needs them all; README.md is there with a YAML header. Each
    problem is a sentence that says what to do.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder} is not a folder; save the model with save_pretrained(folder) first."]
    problems: list[str] = []
    code_modules: list[str] = []

    config_path = folder / "config.json"
    if not config_path.is_file():
        problems.append("config.json is missing; write it with model.save_pretrained(folder).")
    else:
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except ValueError as error:
            problems.append(f"config.json is not valid JSON ({error}); save the model again.")
            config = {}
        auto_map = config.get("auto_map") or {}
        missing = [name for name in REQUIRED_AUTO_MAP if name not in auto_map]
        if missing and config:
            problems.append(
                f"config.json auto_map lacks {', '.join(missing)}; save with modeling_mie imported "
                "(it registers the classes for remote code) so trust_remote_code=True can load the model."
            )
        code_modules += _auto_map_modules(auto_map)

    weights = folder / "model.safetensors"
    if not weights.is_file():
        problems.append("model.safetensors is missing; write it with model.save_pretrained(folder).")
    else:
        problem = _safetensors_problem(weights)
        if problem:
            problems.append(problem + "; save the model again.")

    processor_config = folder / "preprocessor_config.json"
    if processor_config.is_file():
        try:
            processor_settings = json.loads(processor_config.read_text(encoding="utf-8"))
            code_modules += _auto_map_modules(processor_settings.get("auto_map") or {})
        except ValueError as error:
            problems.append(f"preprocessor_config.json is not valid JSON ({error}); save the processor again.")

    # Follow relative imports from the auto_map modules: a file that is imported but missing
    # breaks trust_remote_code loading only on the user's machine.
    seen: set[str] = set()
    pending = list(dict.fromkeys(code_modules))
    while pending:
        module = pending.pop(0)
        if module in seen:
            continue
        seen.add(module)
        path = folder / f"{module.replace('.', '/')}.py"
        if not path.is_file():
            problems.append(
                f"{path.name} is missing (trust_remote_code loading needs it); save the model and processor again."
            )
            continue
        try:
            pending += _relative_imports(path)
        except SyntaxError as error:
            problems.append(f"{path.name} does not parse ({error.msg}, line {error.lineno}).")

    readme = folder / "README.md"
    if not readme.is_file():
        problems.append("README.md is missing; write the model card with modeling_mie.hub.render_model_card.")
    elif not readme.read_text(encoding="utf-8").startswith("---"):
        problems.append("README.md has no YAML header (model-index, license, tags); render it with render_model_card.")
    return problems


# ------------------------------------------------------------------------------------------ upload
def _network_errors() -> tuple[type[BaseException], ...]:
    """Transport-level exception types of the HTTP client huggingface_hub uses."""
    errors: list[type[BaseException]] = [OSError]  # includes OfflineModeIsEnabled (a ConnectionError)
    for name in ("httpx2", "httpx"):  # huggingface_hub >= 2 uses httpx2, 1.x uses httpx
        try:
            module = __import__(name)
        except ImportError:
            continue
        errors.append(module.TransportError)
    return tuple(errors)


def _login_hint(endpoint: str) -> str:
    return (
        "Log in with `hf auth login` (huggingface_hub's CLI; older releases call it `huggingface-cli login`), "
        f"set HF_TOKEN, or pass token=...; the token needs write access to the namespace on {endpoint}."
    )


def push_folder_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    endpoint: str | None = None,
) -> str:
    """Upload a Hub-ready model folder to `repo_id`, creating the repo if needed.

    Everything but README.md goes in one commit, then README.md alone in a second one, so the
    real model card is always the last word: tools that push weights (transformers'
    `push_to_hub`) re-commit a generic README.md, and a card pushed first would be overwritten.
    Files the repo already holds with the same content are not re-sent; files the repo holds
    that the folder lacks are left in place. `__pycache__` and `*.pyc` are never uploaded.

    Args:
        folder: the folder written by `save_pretrained` (+ processor) with README.md.
        repo_id: "namespace/name".
        token: a Hub token with write access; by default `huggingface_hub.get_token()`
            (HF_TOKEN, then the token saved by `hf auth login`).
        private: create the repo private (ignored when it exists already).
        commit_message: message of the files commit (the card commit adds ": model card").
        endpoint: Hub URL; by default huggingface_hub's (HF_ENDPOINT or https://huggingface.co).

    Returns:
        The URL of the last commit, the one that holds the uploaded state.

    Raises:
        MieInputError: the folder is missing or incomplete (the message lists every problem),
            `repo_id` is malformed, no token is available, the Hub refused the token, could
            not be reached or answered with an error.
    """
    from huggingface_hub import HfApi, constants, get_token
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    folder = Path(folder)
    problems = validate_model_folder(folder)
    if problems:
        raise MieInputError(f"{folder} is not ready for the Hub:\n- " + "\n- ".join(problems))
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise MieInputError(f"repo_id {repo_id!r} is not a valid Hub repo id ({error}).") from error
    if repo_id.count("/") != 1:
        raise MieInputError(
            f"repo_id must be 'namespace/name' (your user or organisation name first), got {repo_id!r}."
        )

    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    token = token or get_token()
    if not token:
        raise MieInputError(f"No Hugging Face token found to push {repo_id}. " + _login_hint(endpoint))

    api = HfApi(endpoint=endpoint, token=token)
    message = commit_message or "Upload mie micro-expression model"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        files = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message=message,
            ignore_patterns=["README.md", *UPLOAD_IGNORE_PATTERNS],
        )
        logger.info("Uploaded the model files of %s to %s", folder, files.commit_url)
        card = api.upload_file(
            path_or_fileobj=folder / "README.md",
            path_in_repo="README.md",
            repo_id=repo_id,
            commit_message=f"{message}: model card",
        )
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status in (401, 403):
            raise MieInputError(f"The Hub at {endpoint} refused the token (HTTP {status}) for {repo_id}. "
                                + _login_hint(endpoint)) from error
        server_message = getattr(error, "server_message", None) or str(error).strip().splitlines()[0]
        raise MieInputError(
            f"Pushing {folder} to {repo_id} on {endpoint} failed with HTTP {status}: {server_message}. "
            "Check the repo id and your permissions, then run the push again (unchanged files are not re-sent)."
        ) from error
    except ValueError as error:
        # huggingface_hub raises a plain ValueError when the Hub rejects the card's YAML metadata.
        if "README.md" not in str(error):
            raise
        raise MieInputError(
            f"The Hub rejected README.md of {folder}: {error} Render it again with render_model_card."
        ) from error
    except _network_errors() as error:
        offline = " HF_HUB_OFFLINE is set: unset it to push." if constants.HF_HUB_OFFLINE else ""
        raise MieInputError(
            f"Could not reach the Hub at {endpoint} ({type(error).__name__}: {error}).{offline} "
            "Check the network connection and HF_ENDPOINT, then run the push again."
        ) from error
    logger.info("Uploaded the model card of %s to %s", repo_id, card.commit_url)
    return str(card.commit_url)
