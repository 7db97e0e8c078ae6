"""The aelink command line and the tooling only it uses: data, training, evaluation, benchmarks, the client."""
