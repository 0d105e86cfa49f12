"""The shell: the interactive kd> prompt, the command line and transcripts."""
