module mlkube.local/hack/cluster/src/local-path-helper

go 1.25.0
