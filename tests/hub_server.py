"""A small Hub-compatible server on 127.0.0.1 for tests: the endpoints a push and a download call.

huggingface_hub ships no test double and talks through httpx2, so request-mocking libraries do
nothing; a real HTTP server answering the few endpoints below gives a real round trip. Which
client call hits which endpoint (huggingface_hub 2.4, transformers 5):

- `create_repo`                        POST /api/repos/create
- README.md in a commit                POST /api/validate-yaml
- `upload_folder`, `upload_file`       POST /api/models/{ns}/{name}/preupload/{revision}
                                       POST /api/models/{ns}/{name}/commit/{revision} (ndjson)
- `model_info`/`repo_info`, and        GET  /api/models/{ns}/{name}[/revision/{revision}]
  `snapshot_download` (to pin a commit), and `create_commit` when nothing changed
- `snapshot_download`, `list_repo_tree` GET  /api/models/{ns}/{name}/tree/{revision}[/{path}]
- `hf_hub_download` (so `from_pretrained`) HEAD + GET /{ns}/{name}/resolve/{revision}/{path}

Every file is a regular git blob (preupload answers "regular"): no LFS, no Xet. Repos live in
memory, file contents in a folder on disk. Writes need `Authorization: Bearer <token>` with the
server's token; reads are public. Start it with `LocalHub(root)` as a context manager.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import uvicorn
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

TEST_TOKEN = "hf_mie_test_token"

# What the Hub puts in a new repo's first commit.
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha(content: bytes) -> str:
    """The git object id of a blob: what the Hub reports as a regular file's oid and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    oid: str
    message: str
    files: dict[str, str]  # path -> blob sha, the whole tree after this commit
    changed: list[str]  # paths added, replaced or deleted by this commit
    date: str


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: list[Commit] = field(default_factory=list)

    @property
    def head(self) -> Commit:
        return self.commits[-1]


class HubStore:
    """Repos and their commits; blobs stored as files named by their git sha under `root`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.repos: dict[str, Repo] = {}
        self.lock = threading.Lock()  # uvicorn runs sync endpoints in a thread pool

    def put_blob(self, content: bytes) -> str:
        sha = git_blob_sha(content)
        (self.root / sha).write_bytes(content)
        return sha

    def blob(self, sha: str) -> bytes:
        return (self.root / sha).read_bytes()

    def commit(self, repo: Repo, message: str, files: dict[str, str], changed: list[str]) -> Commit:
        parent = repo.commits[-1].oid if repo.commits else ""
        # Any unique 40-hex id will do; hashing parent + tree + message keeps it reproducible.
        oid = hashlib.sha1(json.dumps([parent, sorted(files.items()), message, len(repo.commits)]).encode()).hexdigest()
        stamp = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        commit = Commit(oid=oid, message=message, files=dict(files), changed=changed, date=stamp)
        repo.commits.append(commit)
        return commit

    def resolve(self, repo: Repo, revision: str) -> Commit | None:
        if revision == "main":
            return repo.head
        return next((c for c in repo.commits if c.oid == revision), None)


def _error(status: int, message: str, code: str | None = None) -> JSONResponse:
    """An error the way the Hub sends it: huggingface_hub maps X-Error-Code to its exception types."""
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(root: Path, token: str = TEST_TOKEN) -> FastAPI:
    """The FastAPI app; `app.state.store` holds the repos, `app.state.requests` every (method, path)."""
    app = FastAPI()
    store = HubStore(root)
    app.state.store = store
    app.state.requests = []

    @app.middleware("http")
    async def record(request: Request, call_next):
        app.state.requests.append((request.method, request.url.path))
        return await call_next(request)

    def authorized(request: Request) -> JSONResponse | None:
        given = request.headers.get("authorization")
        if given == f"Bearer {token}":
            return None
        if given is None:
            return _error(401, "You must be authenticated to write to this repo.")
        # The Hub's own wording; huggingface_hub then reports it as an auth failure, not a missing repo.
        return _error(401, "Invalid credentials in Authorization header")

    def find(namespace: str, name: str, revision: str = "main") -> tuple[Repo, Commit] | JSONResponse:
        repo = store.repos.get(f"{namespace}/{name}")
        if repo is None:
            return _error(404, "Repository not found", "RepoNotFound")
        commit = store.resolve(repo, revision)
        if commit is None:
            return _error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo, commit

    @app.post("/api/repos/create")
    async def create_repo(request: Request):
        if (denied := authorized(request)) is not None:
            return denied
        body = await request.json()
        if body.get("type", "model") != "model":
            return _error(400, "This test server stores model repos only.")
        repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
        url = f"{str(request.base_url).rstrip('/')}/{repo_id}"
        with store.lock:
            if repo_id in store.repos:
                return JSONResponse({"error": "You already created this model repo", "url": url}, status_code=409)
            repo = Repo(repo_id=repo_id, private=body.get("visibility") == "private")
            store.repos[repo_id] = repo
            store.commit(repo, "initial commit", {".gitattributes": store.put_blob(GITATTRIBUTES)}, [".gitattributes"])
        return {"url": url, "name": repo_id, "id": repo_id}

    @app.post("/api/validate-yaml")
    async def validate_yaml(request: Request):
        content = (await request.json()).get("content", "")
        if not content.startswith("---"):
            return {"errors": [], "warnings": [{"message": "Empty or missing yaml metadata in repo card"}]}
        try:
            metadata = yaml.safe_load(content.split("---", 2)[1])
        except (yaml.YAMLError, IndexError) as error:
            return JSONResponse({"errors": [{"message": f"Invalid YAML: {error}"}]}, status_code=400)
        if not isinstance(metadata, dict):
            return JSONResponse({"errors": [{"message": "YAML metadata must be a mapping"}]}, status_code=400)
        return {"errors": [], "warnings": []}

    @app.post("/api/models/{namespace}/{name}/preupload/{revision}")
    async def preupload(namespace: str, name: str, revision: str, request: Request):
        if (denied := authorized(request)) is not None:
            return denied
        found = find(namespace, name, revision)
        if isinstance(found, JSONResponse):
            return found
        _, commit = found
        files = (await request.json())["files"]
        # "oid" of a file the repo already holds lets the client skip unchanged files.
        return {
            "files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": commit.files.get(f["path"])}
                for f in files
            ],
            "commitOid": commit.oid,
        }

    @app.post("/api/models/{namespace}/{name}/commit/{revision}")
    async def commit(namespace: str, name: str, revision: str, request: Request):
        if (denied := authorized(request)) is not None:
            return denied
        if request.query_params.get("create_pr"):
            return _error(400, "This test server does not do pull requests.")
        found = find(namespace, name, revision)
        if isinstance(found, JSONResponse):
            return found
        repo, head = found
        if head is not repo.head:
            return _error(400, "Commits go to the branch head (main) only.")
        lines = [json.loads(line) for line in (await request.body()).splitlines() if line.strip()]
        header = next((item["value"] for item in lines if item["key"] == "header"), None)
        if header is None:
            return _error(400, "The first ndjson line must be the commit header.")
        if header.get("parentCommit") and header["parentCommit"] != head.oid:
            return _error(412, "A commit happened since the given parent commit.")
        files, changed = dict(head.files), []
        for item in lines:
            key, value = item["key"], item["value"]
            if key == "file":
                files[value["path"]] = store.put_blob(base64.b64decode(value["content"]))
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    return _error(404, "A file with this name doesn't exist", "EntryNotFound")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                for path in [p for p in files if p.startswith(prefix)]:
                    del files[path]
            elif key == "lfsFile":
                return _error(400, "This test server answered 'regular' for every file; LFS is not supported.")
            elif key != "header":
                return _error(400, f"Unknown commit operation {key!r}.")
            if key != "header":
                changed.append(value["path"])
        with store.lock:
            new = store.commit(repo, header.get("summary", ""), files, changed)
        base = str(request.base_url).rstrip("/")
        return {
            "success": True,
            "commitOid": new.oid,
            "commitUrl": f"{base}/{repo.repo_id}/commit/{new.oid}",
            "pullRequestUrl": None,
        }

    def model_info(namespace: str, name: str, revision: str):
        found = find(namespace, name, revision)
        if isinstance(found, JSONResponse):
            return found
        repo, commit = found
        return {
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "sha": commit.oid,
            "private": repo.private,
            "lastModified": commit.date,
            "tags": [],
            "siblings": [
                {"rfilename": path, "blobId": sha, "size": (store.root / sha).stat().st_size}
                for path, sha in sorted(commit.files.items())
            ],
        }

    @app.get("/api/models/{namespace}/{name}")
    async def model_info_main(namespace: str, name: str):
        return model_info(namespace, name, "main")

    @app.get("/api/models/{namespace}/{name}/revision/{revision}")
    async def model_info_revision(namespace: str, name: str, revision: str):
        return model_info(namespace, name, revision)

    @app.get("/api/models/{namespace}/{name}/tree/{revision}")
    @app.get("/api/models/{namespace}/{name}/tree/{revision}/{path:path}")
    async def tree(namespace: str, name: str, revision: str, request: Request, path: str = ""):
        found = find(namespace, name, revision)
        if isinstance(found, JSONResponse):
            return found
        _, commit = found
        recursive = request.query_params.get("recursive", "false").lower() == "true"
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        entries: dict[str, dict] = {}
        for file_path, sha in sorted(commit.files.items()):
            if not file_path.startswith(prefix):
                continue
            parts = file_path[len(prefix):].split("/")
            # Folders on the way to the file, then the file itself unless it is deeper than asked.
            for depth in range(1, len(parts)):
                folder = prefix + "/".join(parts[:depth])
                entries.setdefault(folder, {"type": "directory", "oid": "0" * 40, "size": 0, "path": folder})
                if not recursive:
                    break
            if recursive or len(parts) == 1:
                size = (store.root / sha).stat().st_size
                entries[file_path] = {"type": "file", "oid": sha, "size": size, "path": file_path}
        if prefix and not entries:
            return _error(404, f"{path} does not exist on {revision}", "EntryNotFound")
        return list(entries.values())

    @app.api_route("/{namespace}/{name}/resolve/{revision}/{path:path}", methods=["GET", "HEAD"])
    async def resolve(namespace: str, name: str, revision: str, path: str, request: Request):
        found = find(namespace, name, revision)
        if isinstance(found, JSONResponse):
            return found
        _, commit = found
        sha = commit.files.get(path)
        if sha is None:
            response = _error(404, "Entry not found", "EntryNotFound")
            # hf_hub_download caches "this file does not exist at this commit" with it.
            response.headers["X-Repo-Commit"] = commit.oid
            return response
        content = store.blob(sha)
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{sha}"', "Content-Length": str(len(content))}
        if request.method == "HEAD":
            return Response(status_code=200, headers=headers)
        return Response(content=content, headers=headers, media_type="application/octet-stream")

    return app


class LocalHub:
    """The app served by uvicorn in a background thread on 127.0.0.1 and a free port.

    `with LocalHub(tmp_path) as hub:` gives `hub.url` (use as HF_ENDPOINT or `endpoint=`),
    `hub.token`, `hub.store` and `hub.requests`; leaving the block stops the server.
    """

    def __init__(self, root: Path, token: str = TEST_TOKEN):
        self.app = create_app(Path(root), token=token)
        self.token = token
        self.store: HubStore = self.app.state.store
        self.requests: list[tuple[str, str]] = self.app.state.requests
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Binding here (port 0: the kernel picks a free one) and handing the socket to uvicorn
        # leaves no window in which another process could take the port.
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def __enter__(self) -> LocalHub:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("The local Hub server did not start.")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
