#!/usr/bin/env python3
"""A standard S3 client (boto3, the AWS SDK for Python) for the tests and by hand.

Usage: s3_client.py ENDPOINT mb BUCKET
       s3_client.py ENDPOINT put BUCKET KEY FILE
       s3_client.py ENDPOINT ls BUCKET [PREFIX]      (prints "key<TAB>size<TAB>etag" lines)

Credentials come from the standard AWS environment variables (the tests use moto's "test").
"""

import sys

import boto3
from botocore.config import Config


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    endpoint, command, bucket = sys.argv[1], sys.argv[2], sys.argv[3]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    if command == "mb":
        s3.create_bucket(Bucket=bucket)
    elif command == "put":
        key, path = sys.argv[4], sys.argv[5]
        s3.upload_file(path, bucket, key)
    elif command == "ls":
        prefix = sys.argv[4] if len(sys.argv) > 4 else ""
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                print(f"{obj['Key']}\t{obj['Size']}\t{obj['ETag']}")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
