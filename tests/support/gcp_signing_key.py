"""`python -m tests.support.gcp_signing_key PATH`: write a throwaway service-account key file.

google-cloud-storage signs V4 URLs locally with a service-account key
(GOOGLE_APPLICATION_CREDENTIALS); gcp-storage-emulator checks no signature, so a key made
here lets the GCP adapter stage bundles against the emulator without a Google account.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.provisioners.object_store_kits import service_account_key

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.support.gcp_signing_key PATH")
    print(service_account_key(Path(sys.argv[1])))
