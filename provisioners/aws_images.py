"""Which public AMI a launch boots by default, chosen by instance family. Pure: no I/O.

Since November 2023 AWS builds its Deep Learning AMIs in two groups that are not
interchangeable (DLAMI developer guide, "Important NVIDIA driver changes to DLAMIs"): the
OSS NVIDIA driver (OpenRM) ones support G4dn, G5, P4, P5 and later GPU families, and do not
drive the older GPUs; those (P3, P3dn, G3) need the proprietary-driver DLAMI. A V100 on a
p3 booted from the OSS-driver image has no working driver.

Names follow the DLAMI guide's "Finding the ID of a DLAMI":
`/aws/service/deeplearning/ami/<arch>/<AMI name without "Deep", "Learning", "AMI">/latest/ami-id`.
The proprietary-driver base DLAMI is published for Amazon Linux 2 ("Deep Learning Base
Proprietary Nvidia Driver AMI (Amazon Linux 2)", supported instances G3, P3, P3dn); the
replica boot script is plain bash, so it runs on either distribution.
"""

from __future__ import annotations

OSS_DRIVER_GPU_PARAMETER = (
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
)
PROPRIETARY_DRIVER_GPU_PARAMETER = (
    "/aws/service/deeplearning/ami/x86_64/"
    "base-proprietary-nvidia-driver-amazon-linux-2/latest/ami-id"
)
CPU_PARAMETER = "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id"
PROPRIETARY_DRIVER_FAMILIES = frozenset({"p3", "p3dn", "g3", "g3s"})
"""GPU families the OSS-driver DLAMI does not support (V100 and M60 GPUs)."""


def instance_family(instance_type: str) -> str:
    """`p3dn.24xlarge` -> `p3dn`."""
    return instance_type.split(".", 1)[0].lower()


def default_image_parameter(instance_type: str, gpu: bool) -> str:
    """The SSM public parameter naming the AMI for `instance_type`."""
    if not gpu:
        return CPU_PARAMETER
    if instance_family(instance_type) in PROPRIETARY_DRIVER_FAMILIES:
        return PROPRIETARY_DRIVER_GPU_PARAMETER
    return OSS_DRIVER_GPU_PARAMETER
