"""genaudit.v1: datasets, jobs and schedules, results, screening (generated modules beside this file)."""
