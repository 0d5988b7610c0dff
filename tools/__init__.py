"""Tools for trials and tests, never needed by a running hall: the ESC/POS decoder that turns a printed stream
back into a picture (the tests and the headless demo use it; a kiosk never imports it)."""
