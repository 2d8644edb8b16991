"""Tests against the real stack built by deploy/build-stack.sh (``make stack``): the Collector
distribution of deploy/collector-builder.yaml and Jaeger v2, both started on 127.0.0.1."""
