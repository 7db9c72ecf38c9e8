// LISAKit's users get the OpenAI dialect's schemas and LISA's API vocabulary with it.
@_exported import LISAAPI
@_exported import LISAOpenAI
