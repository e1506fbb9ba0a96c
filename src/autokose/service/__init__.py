"""AutoKöse Studio's server side: a job service (jobs.py) and the HTTP API over it (api.py).

Jobs are kept in SQLite under the boards folder, so a server killed mid-run finds its queue
again at start-up and resumes the boards it was drawing; every job runs through the same
`config.resolve` and `pipeline.run` as the command line.
"""
