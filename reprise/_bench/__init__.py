"""`reprise bench`: answer quality on labelled pairs and gateway speed."""
