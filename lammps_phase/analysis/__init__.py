"""Reading results: the shock report of a labelled dump, and the figures of a training run."""
