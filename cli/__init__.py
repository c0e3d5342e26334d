"""The ``xnorm`` command line: a thin Click front end over the library (installed as ``xnorm.cli``)."""
