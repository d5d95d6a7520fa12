"""`qwen35web export MODEL ...`: MODEL is a checkpoint directory or a Hugging Face repo id.

A repo id is resolved with huggingface_hub: downloaded with its progress bars when online, read from the local
cache when offline (`HF_HUB_OFFLINE=1`). Only the files an export reads are fetched (configs, tokenizer,
chat template, safetensors weights), never the whole repository.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from qwen35web.export.errors import BadInputError

log = logging.getLogger(__name__)

# `owner/name`, as the Hub spells repo ids (letters, digits, '-', '_', '.'; no leading dot or slash).
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
EXPORT_FILES = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model"]


def is_repo_id(text: str) -> bool:
    return bool(_REPO_ID.match(text)) and ".." not in text


def resolve_model(model: str, revision: str | None = None) -> Path:
    """The local checkpoint directory for MODEL, or BadInputError (one sentence) saying why there is none."""
    path = Path(model).expanduser()
    if path.exists():
        if revision is not None:
            raise BadInputError(f"--revision applies to a Hugging Face repo id, and {model} is a local path")
        if not path.is_dir():
            raise BadInputError(f"{model} is not a directory (give a checkpoint directory or a repo id)")
        return path
    if not is_repo_id(model):
        raise BadInputError(f"{model} does not exist (give a checkpoint directory or a Hub repo id)")
    return _from_hub(model, revision)


def _from_hub(repo_id: str, revision: str | None) -> Path:
    # Imported here: huggingface_hub is only needed when a repo id is given.
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision}" if revision else repo_id
    log.info(
        "resolving %s on the Hugging Face Hub%s",
        where,
        " (offline: local cache)" if constants.HF_HUB_OFFLINE else "",
    )
    try:
        local = snapshot_download(repo_id, revision=revision, allow_patterns=EXPORT_FILES)
    except LocalEntryNotFoundError:
        raise BadInputError(
            f"{where} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and the Hub cannot "
            "be reached (offline or HF_HUB_OFFLINE=1): download it once online, or give a local directory"
        ) from None
    except RevisionNotFoundError:
        raise BadInputError(f"{repo_id} has no revision {revision!r}") from None
    except GatedRepoError:
        raise BadInputError(
            f"{repo_id} is gated: accept its terms on the Hub and log in (`hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise BadInputError(
            f"{repo_id} is not a repository on the Hugging Face Hub (or it is private)"
        ) from None
    except (OSError, HfHubHTTPError) as err:  # network failures that are not a cache miss
        raise BadInputError(f"cannot download {where}: {err}") from None
    return Path(local)
