"""TaskFlow decorators of the Music AI provider (``@task.musicai``)."""
