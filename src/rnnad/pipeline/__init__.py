"""What each DVC stage does, as library functions; ``stages/*.py`` only wire params to these.

One module per stage (so that ``dvc.yaml`` can list each stage's own code as its dependency)
and ``common`` for the stage outputs several stages read.
"""
