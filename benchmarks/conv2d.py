"""The 1-D -> 2-D convolution rewrite, now an export pass (`svc_export.conv2d`; bundles from
svc-export already carry it). Re-exported here for the benchmarks that rewrite older bundles'
graphs on a copy (`tuning.conv2d_copy`); on a rewritten graph it changes nothing."""

from svc_export.conv2d import conv1d_as_conv2d, rewrite_file, stay_2d

__all__ = ["conv1d_as_conv2d", "rewrite_file", "stay_2d"]
