"""Where a run's outputs live: a local folder, or an object store through ``pyarrow.fs``.

An OUTPUT with a scheme (``s3://bucket/path``, ``gs://bucket/path``,
``abfs://container@account.dfs.core.windows.net/path``: whatever
``pyarrow.fs.FileSystem.from_uri`` can open) is an object store. Everything else
is a local (or mounted) folder, used through ``os`` exactly as before: rename,
fsync and exclusive create are what its commit protocol and lock rest on.

An object store has none of those, so a run into one keeps its working state on a
local folder, its *staging root* (``staging_root``): the sharded copy of the book
that workers read and DuckDB writes, the finished shards, the local half of the
lock. Only the commit touches the store: it uploads the data files under their
final, per-commit names and writes the manifest last (one PUT: an object appears
whole or not at all). The functions here take full URIs and speak in the terms the
commit needs (list a folder, a file's size, read, write, upload, delete).

Credentials and endpoints come from each store's standard environment. For S3:
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN`` (or the
AWS config files / instance metadata, as the AWS SDK finds them), ``AWS_REGION``
(or ``AWS_DEFAULT_REGION``) and ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``)
for an S3-compatible server, which is passed to pyarrow as ``endpoint_override``
because not every pyarrow build reads it itself.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
import uuid
from functools import lru_cache
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from hearth.errors import InputError

STAGING_ENV = "HEARTH_STAGING_DIR"
CHUNK = 8 << 20  # bytes per read when uploading or downloading
# pyarrow's messages for errors no retry can fix (a missing bucket, bad credentials)
_PERMANENT = re.compile(r"NO_SUCH_BUCKET|ACCESS_DENIED|INVALID_ACCESS_KEY_ID|SIGNATURE_DOES_NOT_MATCH|"
                        r"Forbidden|AccessDenied|NoSuchBucket|InvalidAccessKeyId|PermissionDenied",
                        re.IGNORECASE)


def is_remote(path: str) -> bool:
    """True for an object-store URI, False for a local path."""
    return "://" in path


def _endpoint_env() -> tuple[str | None, str | None]:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return endpoint or None, region or None


@lru_cache(maxsize=32)
def _filesystem(scheme: str, netloc: str, endpoint: str | None, region: str | None
                ) -> tuple[pafs.FileSystem, str]:
    """The filesystem of one bucket (container) and the path of its root in it."""
    if scheme == "s3":
        kw: dict[str, object] = {}
        if endpoint:
            kw["endpoint_override"] = endpoint  # a scheme in it (http://) is honoured
        if region:
            kw["region"] = region
        elif not endpoint:
            kw["region"] = pafs.resolve_s3_region(netloc)
        return pafs.S3FileSystem(**kw), netloc
    try:
        fs, root = pafs.FileSystem.from_uri(f"{scheme}://{netloc}/")
    except (ValueError, OSError, ImportError) as e:  # ArrowInvalid is a ValueError
        raise InputError(f"OUTPUT {scheme}://{netloc}: pyarrow cannot open this store ({e}); "
                         "give a local folder or an s3://, gs:// or abfs:// URI") from e
    return fs, root.rstrip("/")


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of ``uri`` and the path of ``uri`` in it."""
    parts = urlsplit(uri)
    if parts.query or parts.fragment:
        raise InputError(f"OUTPUT {uri}: no query or fragment in the URI; set the store's "
                         "options in its environment (AWS_REGION, AWS_ENDPOINT_URL, ...)")
    if parts.scheme in ("", "file"):
        raise InputError(f"OUTPUT {uri}: give a local folder as a plain path, not a file:// URI")
    fs, root = _filesystem(parts.scheme, parts.netloc, *_endpoint_env())
    key = parts.path.strip("/")
    return fs, f"{root}/{key}" if key else root


def info(uri: str) -> pafs.FileInfo:
    fs, path = resolve(uri)
    return fs.get_file_info(path)


def exists(uri: str) -> bool:
    return info(uri).type != pafs.FileType.NotFound


def isdir(uri: str) -> bool:
    return info(uri).type == pafs.FileType.Directory


def size(uri: str) -> int:
    """The object's size in bytes; FileNotFoundError when there is none."""
    found = info(uri)
    if found.type != pafs.FileType.File:
        raise FileNotFoundError(uri)
    return int(found.size)


def mtime(uri: str) -> float | None:
    """When the object was last written (seconds since the epoch, the store's clock);
    None when there is no such object."""
    found = info(uri)
    if found.type != pafs.FileType.File:
        return None
    return found.mtime.timestamp() if found.mtime is not None else time.time()


def listdir(uri: str, *, files_only: bool = False) -> list[str]:
    """Names directly under ``uri`` (files and, unless ``files_only``, folders);
    empty when there is nothing there."""
    fs, path = resolve(uri)
    entries = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(e.base_name for e in entries
                  if not files_only or e.type == pafs.FileType.File)


def _raise_not_found(uri: str, e: OSError) -> None:
    """An OSError of a missing object as FileNotFoundError (stores say it in many ways)."""
    if isinstance(e, FileNotFoundError):
        return
    if info(uri).type == pafs.FileType.NotFound:
        raise FileNotFoundError(uri) from e


def read_bytes(uri: str) -> bytes:
    """The whole object; FileNotFoundError when there is none."""
    fs, path = resolve(uri)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except OSError as e:
        _raise_not_found(uri, e)
        raise


def write_bytes(uri: str, data: bytes) -> None:
    """Write the object in one request: readers see the old object or this one."""
    fs, path = resolve(uri)
    with fs.open_output_stream(path) as f:
        f.write(data)


def upload(local: str, uri: str) -> None:
    """Copy a local file to ``uri``. A kill part-way leaves no object (a multipart
    upload that was not completed is invisible); an error part-way may leave a short
    one, which the commit finds by its size."""
    fs, path = resolve(uri)
    with open(local, "rb") as src, fs.open_output_stream(path) as dst:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            dst.write(chunk)


def download(uri: str, local: str) -> None:
    """Copy ``uri`` to a local file (temp + rename: a kill leaves no partial file)."""
    fs, path = resolve(uri)
    tmp = f"{local}.{os.getpid()}.tmp"
    with fs.open_input_stream(path) as src, open(tmp, "wb") as dst:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            dst.write(chunk)
    os.replace(tmp, local)


def remove(uri: str) -> None:
    """Delete the object; FileNotFoundError when there is none."""
    fs, path = resolve(uri)
    try:
        fs.delete_file(path)
    except OSError as e:
        _raise_not_found(uri, e)
        raise


def open_input(uri: str) -> pa.NativeFile:
    """A random-access file (for Parquet footers)."""
    fs, path = resolve(uri)
    return fs.open_input_file(path)


def staging_root(output: str, staging_dir: str | None = None) -> str:
    """The local folder that holds a run's working state (``_staging``, the local
    lock). A local OUTPUT is its own staging root, as it always was. An object-store
    OUTPUT gets a folder of its own under ``staging_dir`` (default: the environment's
    ``HEARTH_STAGING_DIR``, else ``hearth-staging`` in the system's temp folder),
    named after the URI and a hash of it, so every run of one OUTPUT on this machine
    finds the same staging (to resume, and to see each other's lock) and two OUTPUTs
    never share one. On a multi-node Ray cluster it must be on a filesystem every
    node mounts at the same path: workers read their shards from it."""
    if not is_remote(output):
        return output
    base = staging_dir or os.environ.get(STAGING_ENV) or os.path.join(tempfile.gettempdir(),
                                                                        "hearth-staging")
    canonical = output.rstrip("/")
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", canonical.split("://", 1)[1]).strip("-")[:60]
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    return os.path.join(os.path.abspath(base), f"{readable}-{digest}")


def permanent(err: OSError) -> bool:
    """An object-store error that a retry cannot fix (no such bucket, access denied)."""
    return bool(_PERMANENT.search(str(err)))


def check_output(output: str, staging_dir: str | None = None) -> None:
    """Raise InputError unless an object-store OUTPUT can be used: a scheme pyarrow
    opens, a bucket that exists, not an object itself, a probe object that can be
    written and deleted, and a staging root this process can write. A store that
    cannot be reached raises OSError (transient: exit code 5)."""
    try:
        found = info(output)
        if found.type == pafs.FileType.File:
            raise InputError(f"OUTPUT {output} is an object; give a folder (a prefix) in the store")
        bucket = info(output.split("://", 1)[0] + "://" + urlsplit(output).netloc)
        if bucket.type == pafs.FileType.NotFound:
            raise InputError(f"OUTPUT {output}: the bucket {urlsplit(output).netloc} does not "
                             "exist (or these credentials cannot see it); create it first")
        probe = f"{output.rstrip('/')}/_runs/.hearth-write-check-{uuid.uuid4().hex}"
        write_bytes(probe, b"")
        remove(probe)
    except OSError as e:
        if permanent(e):
            raise InputError(f"OUTPUT {output} cannot be used: {e}; check the bucket and the "
                             "credentials in the environment") from e
        raise
    root = staging_root(output, staging_dir)
    try:
        os.makedirs(root, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".hearth-write-check-", dir=root)
        os.close(fd)
        os.remove(name)
    except OSError as e:
        raise InputError(f"the staging folder {root} of OUTPUT {output} cannot be written "
                         f"({e.strerror}); set {STAGING_ENV} to a folder this user can write"
                         ) from e
