"""Stage three: delivery. One reader's message (`message`, `compose`, `dkim`), the senders
behind one interface (`senders/`), and exactly-once sending of a dispatch (`deliver`)."""
