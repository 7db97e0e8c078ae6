"""MNIST-format datasets: reading and checking the IDX files, and fetching them from public mirrors."""
