# Deliberately broken: the command must refuse to start.
def application(environ, start_response)
    return []
