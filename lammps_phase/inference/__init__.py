"""Labelling a configuration: neighbour graphs, the Classifier, and the file formats it reads and writes."""
