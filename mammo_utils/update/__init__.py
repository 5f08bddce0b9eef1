"""Version 2's model update: fine-tune on accepted submissions, the evaluation gate, their figures."""
