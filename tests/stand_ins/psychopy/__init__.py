"""A stand-in for the few PsychoPy names examples/psychopy_feedback.py uses (PsychoPy itself
needs a display): ``visual.Window.flip`` draws nothing and a simulated participant presses
"f" 0.3 s after each flip; ``event.getKeys(timeStamped=clock)`` returns the keys pressed
since the last call with their times on ``clock``, as PsychoPy's does."""
