"""A real S3-protocol server in the test process (moto's server mode), standing in for
OpenNeuro's public bucket, plus a TCP proxy that can cut a response off midway."""

from __future__ import annotations

import json

from bidstools import image

BUCKET = "openneuro.org"


def start_s3():
    """(server, endpoint URL) of a moto S3 server on 127.0.0.1, any free port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def uploader(endpoint: str):
    """A signed client (dummy credentials: moto checks none) for building the bucket."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def put_dataset(endpoint: str, ds: str = "ds000001", shape=(16, 16, 8, 12)) -> dict[str, bytes]:
    """Upload a small OpenNeuro-like dataset; return {key: bytes}."""
    import io

    files: dict[str, bytes] = {
        f"{ds}/dataset_description.json": json.dumps(
            {"Name": "stand-in", "BIDSVersion": "1.8.0", "Authors": ["a", "b"]}
        ).encode(),
        f"{ds}/README": b"A small dataset the tests build.\n",
        f"{ds}/participants.tsv": b"participant_id\nsub-01\nsub-02\n",
        f"{ds}/task-nback_bold.json": json.dumps(
            {"RepetitionTime": 2.0, "TaskName": "nback"}
        ).encode(),
        f"{ds}/task-nback_events.tsv": b"onset\tduration\ttrial_type\n0\t4\t0back\n8\t4\t2back\n",
        f"{ds}/sub-01/anat/sub-01_T1w.nii.gz": b"not downloaded for a bold run" * 10,
        f"{ds}/derivatives/x/readme.txt": b"not downloaded",
    }
    for subject, runs in (("01", (1, 2)), ("02", (1,))):
        for run in runs:
            buffer = io.BytesIO()
            img = image(shape, seed=run + 10 * int(subject))
            buffer.write(img.to_bytes())
            key = f"{ds}/sub-{subject}/func/sub-{subject}_task-nback_run-{run:02d}_bold.nii"
            files[key] = buffer.getvalue()
    client = uploader(endpoint)
    try:
        client.create_bucket(Bucket=BUCKET)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    # OpenNeuro's bucket is world-readable: anyone may list it and read its objects
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
            }
        ],
    }
    client.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))
    for key, data in files.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=data)
    return files
