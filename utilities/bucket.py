"""The DVC remote's bucket, through the `minio` client: create it, check it, fail fast and clearly.

    AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... python -m utilities.bucket check http://127.0.0.1:9000 dvc-store
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.error import S3Error

# A dead endpoint must fail in seconds, not after minutes of retries.
CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 3.0, 30.0


class S3Unavailable(Exception):
    """The S3 server cannot be reached or refuses the request; the message says which and why."""


def s3_client(endpoint: str, access_key: str, secret_key: str) -> Minio:
    url = urlparse(endpoint)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise S3Unavailable(f"{endpoint!r} is not an http(s) endpoint URL")
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S), retries=False)
    client = Minio(url.netloc, access_key=access_key, secret_key=secret_key, secure=url.scheme == "https", http_client=http)
    client.endpoint = endpoint  # for messages
    return client


def ensure_bucket(client: Minio, bucket: str) -> bool:
    """Create bucket unless it exists. Returns True when it was created."""
    try:
        if client.bucket_exists(bucket):
            return False
        client.make_bucket(bucket)
        return True
    except S3Error as error:
        raise S3Unavailable(f"{client.endpoint}: bucket {bucket!r}: {error.code}: {error.message}") from error
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise S3Unavailable(f"{client.endpoint}: cannot connect ({type(error).__name__}); is the server running?") from error


def object_count(client: Minio, bucket: str, prefix: str = "") -> int:
    try:
        return sum(1 for _ in client.list_objects(bucket, prefix=prefix, recursive=True))
    except S3Error as error:
        raise S3Unavailable(f"{client.endpoint}: bucket {bucket!r}: {error.code}: {error.message}") from error
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise S3Unavailable(f"{client.endpoint}: cannot connect ({type(error).__name__}); is the server running?") from error


def dvc_remote_bucket(config: Path | None = None) -> tuple[str, str]:
    """(bucket, prefix) of the default remote's s3:// URL in .dvc/config."""
    from configparser import ConfigParser

    from utilities.workspace import ROOT

    parser = ConfigParser()
    parser.read(config or ROOT / ".dvc" / "config")
    default = parser.get("core", "remote")
    url = parser.get(f"'remote \"{default}\"'", "url")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["check", "create"])
    parser.add_argument("endpoint")
    parser.add_argument("bucket")
    args = parser.parse_args()
    try:
        client = s3_client(args.endpoint, os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
        if args.action == "create":
            ensure_bucket(client, args.bucket)
        print(f"{args.endpoint}: bucket {args.bucket!r} holds {object_count(client, args.bucket)} objects")
    except KeyError as missing:
        sys.exit(f"set {missing.args[0]} in the environment (credentials never go in files under git)")
    except S3Unavailable as error:
        sys.exit(str(error))


if __name__ == "__main__":
    main()
