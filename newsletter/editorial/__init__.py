"""The editorial desk: machine-drafted reads the editor approves (drafts, client, answer,
prompt) and a ranker that learns what this editor scores highly (ranking; fit imports
scikit-learn and is loaded only to fit). Between `signals` and `dispatch` in the layers."""
