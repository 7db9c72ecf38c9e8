// What the parsers' sources need from the rest of LISAKit, and no more.
enum DocumentParser {}
